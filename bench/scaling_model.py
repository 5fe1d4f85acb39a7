#!/usr/bin/env python3
"""The scaling model of docs/distributed-scaling.md, from measured JSON figures.

    python3 bench/scaling_model.py --ab AB.json --steps STEPS.json [--check STEPS512.json]
    python3 bench/scaling_model.py --self-test

AB.json is bench/alpha_beta.c's output (its "fit": the loopback alpha and bandwidth),
STEPS.json bench/step_time.c's (per model: forward, backward and optimiser time at one
per-rank batch, each parameter tensor's size and the moment in the backward its gradient
is final). --check is step_time at another batch, to show how far step time is from
proportional to the batch, which the model assumes. Prints the inputs and, per model,
network and rank count, the predicted efficiency T_c / (T_c + exposed communication):

  T_ar(n, p) = 2(p-1)·alpha + 2(p-1)/p · n / B          (ring allreduce of n bytes)
  no overlap:    exposed = T_ar(N, p), N = all gradient bytes, sent after the backward
  ideal overlap: exposed = max(0, T_ar(N, p) - T_bwd)   (the whole backward is the window)
  buckets:       buckets of >= --bucket bytes, taken from the last parameter to the first
                 (as tg_ddp does), each sent when its last gradient is final and the one
                 before it has finished; exposed = max(0, end of the last - T_bwd)

--bench FILE (a bench.json) or --step-us mlp=US,cnn=US rescale a model's measured times
to another step time (a quiet machine's), keeping the measured shares: --bench takes the
MLP's forward, backward and optimiser times (mlp.t1.*) and the CNN's cnn.t1.samples_per_s
when the file has them.

T_c = forward + backward + optimiser. Times scale with the per-rank batch b as b/b0; the
batch at which communication hides entirely behind the backward (ideal overlap) is
b* = b0 · T_ar(N, p) / T_bwd(b0)."""
import argparse
import json
import sys

DEFAULT_NETS = ["10 Gbit/s:5:1.25", "100 Gbit/s:2:12.5"]


def t_ring(n, p, alpha, bw):
    """Seconds for a ring allreduce of n bytes over p ranks."""
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * n / bw


def buckets(tensors, cap):
    """(bytes, ready seconds) per bucket, from the last tensor to the first."""
    out, size, ready = [], 0, 0.0
    for t in reversed(tensors):
        size += 4 * t["numel"]
        ready = max(ready, t["ready_us"] * 1e-6)
        if size >= cap:
            out.append((size, ready))
            size, ready = 0, 0.0
    if size:
        out.append((size, ready))
    return out


def exposed_buckets(m, scale, p, alpha, bw, cap):
    """Communication left after the backward with bucketed overlap, seconds."""
    end = 0.0
    for size, ready in buckets(m["tensors"], cap):
        end = max(end, ready * scale) + t_ring(size, p, alpha, bw)
    return max(0.0, end - m["backward_us"] * 1e-6 * scale)


def batch_for(m, p, alpha, bw, cap, target):
    """Smallest per-rank batch (a multiple of 1) with bucketed efficiency >= target."""
    b0 = m["batch"]

    def eff(b):
        s = b / b0
        tc = (m["forward_us"] + m["backward_us"] + m["optimiser_us"]) * 1e-6 * s
        return tc / (tc + exposed_buckets(m, s, p, alpha, bw, cap))

    lo, hi = 1, 1
    while eff(hi) < target:
        hi *= 2
        if hi > 1 << 24:
            return None
    while lo < hi:
        mid = (lo + hi) // 2
        if eff(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def self_test():
    """Checks the closed forms against step-by-step versions; exits 1 on a mismatch."""
    bad = []
    for p in (2, 3, 8, 64, 512):
        for n in (4, 1 << 20, 1 << 26):
            steps = sum(5e-6 + (n / p) / 1.25e9 for _ in range(2 * (p - 1)))
            if abs(steps - t_ring(n, p, 5e-6, 1.25e9)) > 1e-12 * steps:
                bad.append(f"ring p={p} n={n}")
    m = {"batch": 128, "forward_us": 100.0, "backward_us": 200.0, "optimiser_us": 10.0,
         "tensors": [{"numel": 1000, "ready_us": 200.0}, {"numel": 10, "ready_us": 20.0}]}
    # One bucket for everything, ready at the end: the bucket schedule is no overlap.
    one = exposed_buckets(m, 1.0, 8, 5e-6, 1.25e9, 1 << 30)
    if abs(one - t_ring(4040, 8, 5e-6, 1.25e9)) > 1e-15:
        bad.append("one bucket")
    # Two buckets, the first (40 bytes) ready at 20 us: it ends before the second starts.
    want = t_ring(4000, 8, 5e-6, 1.25e9)
    if abs(exposed_buckets(m, 1.0, 8, 5e-6, 1.25e9, 1) - want) > 1e-15:
        bad.append("two buckets")
    # Gradients ready at once, at twice the batch: the backward is 200 us longer, the
    # exposed part 200 us shorter.
    m["tensors"] = [{"numel": 10**8, "ready_us": 0.0}]
    e1, e2 = (exposed_buckets(m, k, 8, 5e-6, 1.25e9, 1 << 30) for k in (1.0, 2.0))
    if abs((e1 - e2) - 200e-6) > 1e-12:
        bad.append("scaling")
    if bad:
        sys.exit("scaling_model: self-test failed: " + ", ".join(bad))
    print("scaling_model: self-test passed")


def parse_net(s):
    try:
        name, a, g = s.rsplit(":", 2)
        a, g = float(a), float(g)
        if not name or a < 0 or g <= 0:
            raise ValueError
        return name, a * 1e-6, g * 1e9
    except ValueError:
        sys.exit(f"scaling_model: --net '{s}': want NAME:ALPHA_US:GBPS, alpha >= 0, GB/s > 0")


def rescale(m, step_us=None, phases=None):
    """m's times scaled to a step of step_us, or to the (forward, backward, optimiser)
    phases (the gradient-ready offsets scale with the backward)."""
    tc = m["forward_us"] + m["backward_us"] + m["optimiser_us"]
    if phases:
        f, b, o = phases
    else:
        k = step_us / tc
        f, b, o = m["forward_us"] * k, m["backward_us"] * k, m["optimiser_us"] * k
    kb = b / m["backward_us"]
    m = dict(m, forward_us=f, backward_us=b, optimiser_us=o)
    m["tensors"] = [dict(t, ready_us=t["ready_us"] * kb) for t in m["tensors"]]
    return m, tc


def load(path, what, keys):
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"scaling_model: {what} '{path}': {e}")
    model_keys = ("batch", "params", "forward_us", "backward_us", "optimiser_us", "tensors")
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            sys.exit(f"scaling_model: {what} '{path}': no \"{k}\" (is it the right file?)")
        if k in ("mlp", "cnn") and not all(x in d[k] for x in model_keys):
            sys.exit(f"scaling_model: {what} '{path}': \"{k}\" lacks one of {model_keys}")
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    if "--self-test" in sys.argv[1:]:
        self_test()
        return
    ap.add_argument("--self-test", action="store_true", help="check the formulas and exit")
    ap.add_argument("--ab", required=True, help="bench/alpha_beta.c's --json output")
    ap.add_argument("--steps", required=True, help="bench/step_time.c's --json output")
    ap.add_argument("--check", help="step_time's output at another batch (linearity check)")
    ap.add_argument("--bench", help="a bench.json whose step times replace the measured ones")
    ap.add_argument("--step-us", help="MODEL=US[,MODEL=US]: step times to rescale to")
    ap.add_argument("--net", action="append", help="NAME:ALPHA_US:GBPS (repeatable)")
    ap.add_argument("--ranks", default="8,64,512")
    ap.add_argument("--bucket", type=int, default=1 << 20, help="bucket bytes (tg_ddp: 1 MiB)")
    a = ap.parse_args()
    try:
        ranks = [int(r) for r in a.ranks.split(",")]
        if any(r < 2 for r in ranks):
            raise ValueError
    except ValueError:
        sys.exit(f"scaling_model: --ranks '{a.ranks}': want rank counts >= 2, comma-separated")
    if a.bucket < 1:
        sys.exit(f"scaling_model: --bucket {a.bucket}: want >= 1")
    ab = load(a.ab, "--ab", ["fit"])
    st = load(a.steps, "--steps", ["mlp", "cnn"])
    fit = ab["fit"]
    measured = dict(st)
    notes = []
    if a.bench:
        fg = load(a.bench, "--bench", ["figures"])["figures"]
        try:
            ph = [fg[f"mlp.t1.{k}_us"]["median"] for k in ("forward", "backward", "optimiser")]
            st["mlp"], old = rescale(st["mlp"], phases=ph)
            notes.append(f"mlp: {a.bench}'s phases {ph[0]:.0f}/{ph[1]:.0f}/{ph[2]:.0f} us "
                         f"(measured step {old:.0f} us)")
        except (KeyError, TypeError):
            pass
        if "cnn.t1.samples_per_s" in fg:
            us = st["cnn"]["batch"] / fg["cnn.t1.samples_per_s"]["median"] * 1e6
            st["cnn"], old = rescale(st["cnn"], step_us=us)
            notes.append(f"cnn: {a.bench}'s step {us:.0f} us (measured {old:.0f} us)")
    for item in (a.step_us.split(",") if a.step_us else []):
        try:
            k, v = item.split("=")
            if k not in ("mlp", "cnn") or float(v) <= 0:
                raise ValueError
        except ValueError:
            sys.exit(f"scaling_model: --step-us '{item}': want mlp=US or cnn=US, US > 0")
        st[k], old = rescale(st[k], step_us=float(v))
        notes.append(f"{k}: step rescaled to {float(v):.0f} us (measured {old:.0f} us), "
                     "measured shares kept")
    nets = [parse_net(s) for s in (a.net or DEFAULT_NETS)]
    nets.append((f"loopback fit ({ab.get('ranks', '?')} ranks)", fit["alpha_us"] * 1e-6,
                 fit["bandwidth_GBps"] * 1e9))

    print(f"Inputs: {a.ab} (alpha {fit['alpha_us']:.3g} us, bandwidth "
          f"{fit['bandwidth_GBps']:.3g} GB/s, fitted on {fit['min_bytes']}..{fit['max_bytes']} "
          f"bytes, forced algorithm: {ab.get('forced_algorithm', '?')}); {a.steps} "
          f"({st.get('threads', '?')} thread); buckets of {a.bucket} bytes")
    for n in notes:
        print(f"  {n}")
    print()
    print("| model | batch | parameters | gradient bytes | forward | backward | optimiser "
          "| T_c | backward share | buckets (bytes @ ready) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for k in ("mlp", "cnn"):
        m = st[k]
        tc = m["forward_us"] + m["backward_us"] + m["optimiser_us"]
        bk = ", ".join(f"{s} @ {r * 1e6:.0f} us" for s, r in buckets(m["tensors"], a.bucket))
        print(f"| {k} | {m['batch']} | {m['params']} | {4 * m['params']} | "
              f"{m['forward_us']:.0f} us | {m['backward_us']:.0f} us | "
              f"{m['optimiser_us']:.0f} us | {tc:.0f} us | {100 * m['backward_us'] / tc:.0f}% | "
              f"{bk} |")
    if a.check:
        print()
        ck = load(a.check, "--check", ["mlp", "cnn"])
        for k in ("mlp", "cnn"):
            m, c = measured[k], ck[k]
            s = c["batch"] / m["batch"]
            t0 = m["forward_us"] + m["backward_us"] + m["optimiser_us"]
            t1 = c["forward_us"] + c["backward_us"] + c["optimiser_us"]
            rb = c["backward_us"] / (s * m["backward_us"])
            print(f"{k}: step at batch {c['batch']} took {t1 / (s * t0):.2f}x the batch-"
                  f"{m['batch']} step scaled by {s:g} (backward {rb:.2f}x)")
    print()
    print("| model | network (alpha, bandwidth) | ranks | T_ar | no overlap | ideal overlap "
          "| buckets | batch b* to hide (ideal) | batch for 90% (buckets) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for k in ("mlp", "cnn"):
        m = st[k]
        n = 4 * m["params"]
        tc = (m["forward_us"] + m["backward_us"] + m["optimiser_us"]) * 1e-6
        tb = m["backward_us"] * 1e-6
        for name, alpha, bw in nets:
            for p in ranks:
                tar = t_ring(n, p, alpha, bw)
                e_no = tc / (tc + tar)
                e_id = tc / (tc + max(0.0, tar - tb))
                e_bk = tc / (tc + exposed_buckets(m, 1.0, p, alpha, bw, a.bucket))
                b_star = m["batch"] * tar / tb
                b90 = batch_for(m, p, alpha, bw, a.bucket, 0.9)
                print(f"| {k} | {name} ({alpha * 1e6:.3g} us, {bw / 1e9:.3g} GB/s) | {p} | "
                      f"{tar * 1e6:.0f} us | {100 * e_no:.1f}% | {100 * e_id:.1f}% | "
                      f"{100 * e_bk:.1f}% | {b_star:.0f} | "
                      f"{b90 if b90 is not None else 'never'} |")


if __name__ == "__main__":
    main()

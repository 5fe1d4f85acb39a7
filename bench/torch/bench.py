#!/usr/bin/python3
"""The PyTorch side of `make bench`: the same workloads as bench/bench.c, printed as
"key value" lines with the same keys (bench.c reads them and prints the ratios). The MLP
and CNN parts run as servers (--part mlp-serve, cnn-serve) that bench.c asks for one
repetition at a time, alternating with its own, so that both engines see the same machine load.
Thread counts are applied both through torch.set_num_threads and BLIS_NUM_THREADS, since
Debian's PyTorch runs its GEMMs on BLIS and torch.set_num_threads does not reach it."""
import argparse, gzip, os, resource, statistics, subprocess, sys, time

def overhead(torch, dtype, n, k, reps):
    x = torch.rand(n, dtype=dtype) * 2 - 1
    x.requires_grad_(True)
    def chain(y):
        for i in range(k):
            r = i & 3
            if r == 0: y = y * 0.5
            elif r == 1: y = y + 0.1
            elif r == 2: y = torch.tanh(y)
            else: y = y + x
        return y
    fwd, bwd, nog = [], [], []
    for r in range(reps + 1):
        t0 = time.perf_counter(); s = chain(x).sum(); t1 = time.perf_counter()
        x.grad = None
        t2 = time.perf_counter(); s.backward(); t3 = time.perf_counter()
        with torch.no_grad():
            t4 = time.perf_counter(); chain(x); t5 = time.perf_counter()
        if r:
            fwd.append((t1 - t0) / k * 1e9); bwd.append((t3 - t2) / k * 1e9); nog.append((t5 - t4) / k * 1e9)
    f, b = statistics.median(fwd), statistics.median(bwd)
    return f, b, statistics.median(nog), f + b

FASHION = "/usr/share/datasets/fashion-mnist"

def mlp_runner(torch):
    """One repetition (30 steps) of the MLP benchmark per call, returning samples/s. Like
    bench.c, the steps cycle through the first 16 batches of 128 Fashion-MNIST training
    images (scaled to [0, 1]) when the data set is installed, else 16 random batches, each
    copied into the input tensor before its step, outside the step's time."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                              torch.nn.ReLU(), torch.nn.Linear(256, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    nb = 16
    if os.path.isdir(FASHION):
        x = torch.tensor(load_idx(FASHION + "/train-images-idx3-ubyte.gz")[:nb * 128].reshape(nb, 128, 784),
                         dtype=torch.float32) / 255
        y = torch.tensor(load_idx(FASHION + "/train-labels-idx1-ubyte.gz")[:nb * 128].reshape(nb, 128),
                         dtype=torch.long)
    else:
        x = torch.rand(nb, 128, 784); y = torch.randint(0, 10, (nb, 128))
    xs, ys = [x[i].contiguous() for i in range(nb)], [y[i].contiguous() for i in range(nb)]
    xin, yin = torch.empty(128, 784), torch.empty(128, dtype=torch.long)
    lossf = torch.nn.CrossEntropyLoss()
    state = {"next": 0}
    def rep():
        # each step's batch is copied into the input first, untimed, as in bench.c
        t = 0.0
        for _ in range(30):
            b = state["next"]; state["next"] = (b + 1) % nb
            xin.copy_(xs[b]); yin.copy_(ys[b])
            t0 = time.perf_counter()
            opt.zero_grad(); loss = lossf(net(xin), yin); loss.backward(); opt.step()
            t += time.perf_counter() - t0
        return 128 / (t / 30)
    return rep

def conv_layers(torch, threads, reps):
    """bench.c's part 2b: the demo CNN's two convolutions (batch 128, 3x3, padding 1; l1
    1->32 on 28x28 with an input needing no gradient, l2 32->64 on 14x14 with one), the
    forward with autograd recording and the forward + backward of the output's sum, in ms: the
    median over repetitions of the mean of 10 calls."""
    torch.manual_seed(1)
    F = torch.nn.functional
    for name, c, h, o, dx in (("l1", 1, 28, 32, False), ("l2", 32, 14, 64, True)):
        x = torch.rand(128, c, h, h, requires_grad=dx)
        w = (torch.rand(o, c, 3, 3) * 0.6 - 0.3).requires_grad_(True)
        b = torch.zeros(o, requires_grad=True)
        fwd, fb = [], []
        for r in range(reps + 1):
            a = t = 0.0
            for _ in range(10):
                t0 = time.perf_counter(); y = F.conv2d(x, w, b, padding=1); t1 = time.perf_counter()
                F.conv2d(x, w, b, padding=1).sum().backward(); t2 = time.perf_counter()
                a += t1 - t0; t += t2 - t1
            if r:
                fwd.append(a / 10 * 1e3); fb.append(t / 10 * 1e3)
        print(f"conv.{name}.t{threads}.fwd_ms {statistics.median(fwd):.6g}")
        print(f"conv.{name}.t{threads}.fwd_bwd_ms {statistics.median(fb):.6g}")

def conv_runner(torch):
    """conv_layers' two layers, one repetition (10 calls of each timing) per call of the
    returned function with the layer's name, returning (fwd ms, fwd + bwd ms): bench.c asks
    for one after each of its own repetitions (--part conv-serve)."""
    torch.manual_seed(1)
    F = torch.nn.functional
    layers = {}
    for name, c, h, o, dx in (("l1", 1, 28, 32, False), ("l2", 32, 14, 64, True)):
        x = torch.rand(128, c, h, h, requires_grad=dx)
        w = (torch.rand(o, c, 3, 3) * 0.6 - 0.3).requires_grad_(True)
        layers[name] = (x, w, torch.zeros(o, requires_grad=True))
    def rep(name):
        x, w, b = layers[name]
        a = t = 0.0
        for _ in range(10):
            t0 = time.perf_counter(); y = F.conv2d(x, w, b, padding=1); t1 = time.perf_counter()
            F.conv2d(x, w, b, padding=1).sum().backward(); t2 = time.perf_counter()
            a += t1 - t0; t += t2 - t1
        return a / 10 * 1e3, t / 10 * 1e3
    return rep

def cnn_runner(torch):
    """One repetition (8 steps) of bench.c's CNN per call, returning samples/s: the model of
    examples/cnn.c in torch.nn, Adam lr 1e-3, on the MLP's 16 batches (Fashion-MNIST or
    random), each copied into the input before its step, outside the step's time."""
    torch.manual_seed(1)
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    nb = 16
    if os.path.isdir(FASHION):
        x = torch.tensor(load_idx(FASHION + "/train-images-idx3-ubyte.gz")[:nb * 128].reshape(nb, 128, 1, 28, 28),
                         dtype=torch.float32) / 255
        y = torch.tensor(load_idx(FASHION + "/train-labels-idx1-ubyte.gz")[:nb * 128].reshape(nb, 128),
                         dtype=torch.long)
    else:
        x = torch.rand(nb, 128, 1, 28, 28); y = torch.randint(0, 10, (nb, 128))
    xs, ys = [x[i].contiguous() for i in range(nb)], [y[i].contiguous() for i in range(nb)]
    xin, yin = torch.empty(128, 1, 28, 28), torch.empty(128, dtype=torch.long)
    lossf = torch.nn.CrossEntropyLoss()
    state = {"next": 0}
    def rep():
        t = 0.0
        for _ in range(8):
            b = state["next"]; state["next"] = (b + 1) % nb
            xin.copy_(xs[b]); yin.copy_(ys[b])
            t0 = time.perf_counter()
            opt.zero_grad(); loss = lossf(net(xin), yin); loss.backward(); opt.step()
            t += time.perf_counter() - t0
        return 128 / (t / 8)
    return rep

def mlp(torch, reps):
    rep = mlp_runner(torch)
    rep()  # warm-up
    return statistics.median([rep() for _ in range(reps)])

def load_idx(path):
    import numpy as np
    with gzip.open(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)

def train_fashion(torch):
    """One epoch of the default `tapegrad train` run, for peak RSS."""
    d = "/usr/share/datasets/fashion-mnist"
    x = torch.tensor(load_idx(d + "/train-images-idx3-ubyte.gz").reshape(-1, 784), dtype=torch.float32) / 255
    y = torch.tensor(load_idx(d + "/train-labels-idx1-ubyte.gz"), dtype=torch.long)
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                              torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    perm = torch.randperm(x.shape[0])
    for i in range(0, x.shape[0], 128):
        idx = perm[i:i + 128]
        opt.zero_grad(); torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward(); opt.step()

def hvp(torch, dtype, reps):
    """The Hessian-vector product of bench.c's part 3b: the bench MLP's cross-entropy at a
    random batch, by double backward; and one gradient beside it. Milliseconds."""
    torch.manual_seed(1)
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                              torch.nn.ReLU(), torch.nn.Linear(256, 10)).to(dtype)
    ps = list(net.parameters())
    x = torch.rand(128, 784, dtype=dtype); y = torch.randint(0, 10, (128,))
    v = [torch.randn_like(p) for p in ps]
    lossf = torch.nn.CrossEntropyLoss()
    def grad():
        return torch.autograd.grad(lossf(net(x), y), ps)
    def hv():
        g = torch.autograd.grad(lossf(net(x), y), ps, create_graph=True)
        s = sum((gi * vi).sum() for gi, vi in zip(g, v))
        return torch.autograd.grad(s, ps)
    out = []
    for f in (grad, hv):
        f()
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(10): f()
            ts.append((time.perf_counter() - t0) / 10 * 1e3)
        out.append(statistics.median(ts))
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--part", default="all")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    if a.part == "all":
        # Each part in its own process: thread settings must precede the import of torch.
        env = dict(os.environ)
        # The MLP, the convolutions and the CNN are run by bench.c itself through --part
        # mlp-serve, conv-serve and cnn-serve, alternating with its own repetitions; --part
        # mlp and conv run them alone.
        for part, th in (("overhead", 1), ("hvp", 1)):
            env["BLIS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = str(th)
            out = subprocess.run([sys.executable, __file__, "--part", part, "--threads", str(th),
                                  "--reps", str(a.reps)] + (["--quick"] if a.quick else []),
                                 env=env, capture_output=True, text=True)
            sys.stdout.write(out.stdout)
        if os.path.isdir("/usr/share/datasets/fashion-mnist"):
            env["BLIS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = "1"
            out = subprocess.run([sys.executable, __file__, "--part", "rss"], env=env,
                                 capture_output=True, text=True)
            sys.stdout.write(out.stdout)
        return
    if a.part == "rss":  # a process whose only child is the training run
        done = subprocess.run([sys.executable, __file__, "--part", "fashion"], capture_output=True)
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if done.returncode == 0:  # without torch the child fails: no figure
            print(f"memory.peak_rss_fashion_mnist_1_epoch {rss:.6g}")
        return
    import torch
    torch.set_num_threads(a.threads)
    if a.part == "overhead":
        for dname, dt in (("f32", torch.float32), ("f64", torch.float64)):
            for n in (1, 64, 4096):
                f, b, ng, fb = overhead(torch, dt, n, 1000, a.reps)
                for key, v in (("fwd_recorded", f), ("backward", b), ("fwd_nograd", ng), ("fwd_bwd", fb)):
                    print(f"overhead.{dname}.n{n}.{key} {v:.6g}")
        for k in (1000, 10000, 100000) if a.quick else (1000, 10000, 100000, 1000000):
            f, b, ng, fb = overhead(torch, torch.float32, 1, k, 3 if k >= 100000 else a.reps)
            for key, v in (("fwd_recorded", f), ("backward", b), ("fwd_nograd", ng), ("fwd_bwd", fb)):
                print(f"overhead.f32.k{k}.{key} {v:.6g}")
    elif a.part == "hvp":
        for dname, dt in (("f32", torch.float32), ("f64", torch.float64)):
            g, h = hvp(torch, dt, a.reps)
            print(f"hvp.{dname}.gradient_ms {g:.6g}")
            print(f"hvp.{dname}.hvp_ms {h:.6g}")
            print(f"hvp.{dname}.hvp_over_gradient {h / g:.6g}")
    elif a.part == "conv":
        conv_layers(torch, a.threads, a.reps)
    elif a.part == "mlp":
        print(f"mlp.t{a.threads}.samples_per_s {mlp(torch, a.reps):.6g}")
    elif a.part == "mlp-serve":  # one repetition per line read, for bench.c
        rep = mlp_runner(torch)
        print("ready", flush=True)
        for _ in sys.stdin:
            print(f"{rep():.6g}", flush=True)
    elif a.part == "conv-serve":  # one repetition of the layer named on each line read
        rep = conv_runner(torch)
        print("ready", flush=True)
        for line in sys.stdin:
            f, fb = rep(line.strip())
            print(f"{f:.6g} {fb:.6g}", flush=True)
    elif a.part == "cnn-serve":  # the same for the CNN
        rep = cnn_runner(torch)
        print("ready", flush=True)
        for _ in sys.stdin:
            print(f"{rep():.6g}", flush=True)
    elif a.part == "fashion":
        train_fashion(torch)

if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""bench/torch/ddp.py: PyTorch DistributedDataParallel (gloo) on the bench MLP, beside
bench/dist_bench.c: 784-256-256-10 ReLU, f32, batch 128 per rank, SGD-momentum, random
Fashion-MNIST-shaped data, one thread per rank.

    /usr/bin/python3 bench/torch/ddp.py --np 2 [--steps 200]

Prints torch.dist.npN.samples_per_s over all ranks, like dist_bench's dist.npN line."""
import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn


def run(rank, n, steps, port):
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=n)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10))
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(1 + rank)
    x = torch.rand(128, 784, generator=g)
    y = torch.randint(0, 10, (128,), generator=g)
    loss_fn = nn.CrossEntropyLoss()
    for s in range(steps + 20):
        if s == 20:
            dist.barrier()
            t0 = time.perf_counter()
        opt.zero_grad()
        loss_fn(ddp(x), y).backward()
        opt.step()
    secs = time.perf_counter() - t0
    if rank == 0:
        print("torch.dist.np%d.samples_per_s %.0f" % (n, steps * 128 * n / secs))
    dist.destroy_process_group()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--np", type=int, default=2)
    ap.add_argument("--steps", type=int, default=200)
    a = ap.parse_args()
    port = 29500 + os.getpid() % 1000
    mp.spawn(run, args=(a.np, a.steps, port), nprocs=a.np, join=True)

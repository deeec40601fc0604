#!/usr/bin/env python3
"""PyTorch side of `labelsmooth bench loss`: F.cross_entropy(label_smoothing=0.1), mean,
forward + backward on float32 logits ~ N(0, 3^2), median of 7 after a warm-up.

usage: torch_loss.py [--threads T] [--shapes NxK,...] [--device cpu|cuda] [--json]
(needs: pip install torch; on cuda the device is synchronized before each timing ends)
"""
import argparse, json, statistics, time

import torch
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--shapes", default="8192x1000,4096x32000,512x128256")
ap.add_argument("--reps", type=int, default=7)
ap.add_argument("--device", default="cpu")
ap.add_argument("--json", action="store_true")
args = ap.parse_args()
torch.set_num_threads(args.threads)
torch.manual_seed(0)

rows = []
for shape in args.shapes.split(","):
    n, k = (int(v) for v in shape.lower().split("x"))
    x = (torch.randn(n, k, device=args.device) * 3).requires_grad_(True)
    t = torch.randint(0, k, (n,), device=args.device)

    def step():
        x.grad = None
        F.cross_entropy(x, t, label_smoothing=0.1).backward()
        if x.is_cuda:
            torch.cuda.synchronize()

    step()
    times = []
    for _ in range(args.reps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    s = statistics.median(times)
    rows.append({"n": n, "k": k, "median_ms": s * 1e3, "gbps": 2 * n * k * 4 / s / 1e9})

if args.json:
    print(json.dumps(rows, indent=2))
else:
    print(f"PyTorch {torch.__version__}, {args.threads} threads")
    for r in rows:
        print(f"{r['n']:>7} x {r['k']:>7} {r['median_ms']:>10.2f} ms {r['gbps']:>8.2f} GB/s")

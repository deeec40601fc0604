"""Side-by-side benchmark of labelsmooth.torch and PyTorch's own loss, on the CPU.

    python -m labelsmooth.bench                      # batch 4096, hidden 1024, vocabulary 32000
    python -m labelsmooth.bench --batch 1024 --json  # smaller, one JSON object per line

Each variant runs in a fresh process (same threads, same seeded inputs), once to warm up and
then ``--repeats`` times; the table gives the median time and the peak memory the variant's
computation needed: the process's peak resident memory less its resident memory once the inputs,
parameters and optimizer were made. Variants:

- ``loss``: forward and backward of the loss alone on ``[batch, vocabulary]`` float32 logits,
  label smoothing 0.1: ``torch`` (``F.cross_entropy``), ``labelsmooth.torch``
  (``CrossEntropyLoss``), ``labelsmooth (numpy)`` (the kernel through NumPy, no autograd, a new
  gradient array per call as the others), ``labelsmooth (numpy, out=)`` (the same writing into
  one gradient array kept across calls, as the Rust ``labelsmooth bench loss`` does).
- ``step``: one SGD step of an output layer ``Linear(hidden, vocabulary)`` on ``[batch, hidden]``
  features: ``torch``, ``labelsmooth.torch`` (the layer, then the drop-in loss), and
  ``labelsmooth.torch fused`` (``LinearCrossEntropyLoss``: the logits are never held).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

VARIANTS = [
    ("loss", "torch"),
    ("loss", "labelsmooth.torch"),
    ("loss", "labelsmooth (numpy)"),
    ("loss", "labelsmooth (numpy, out=)"),
    ("step", "torch"),
    ("step", "labelsmooth.torch"),
    ("step", "labelsmooth.torch fused"),
]


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_mib() -> float:
    """Resident memory now (Linux); elsewhere the peak so far."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return _peak_rss_mib()


def _one(kind: str, impl: str, args) -> dict:
    """Runs one variant in this process and returns its measurements."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    import labelsmooth
    from labelsmooth.torch import CrossEntropyLoss, LinearCrossEntropyLoss

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, args.vocab, (args.batch,), generator=g)
    if kind == "loss":
        x = torch.randn(args.batch, args.vocab, generator=g) * 2
        if impl.startswith("labelsmooth (numpy"):
            xn, yn = x.numpy(), y.numpy()
            out = np.zeros(xn.shape, dtype=np.float32) if "out=" in impl else None

            def run():
                labelsmooth.cross_entropy(xn, yn, label_smoothing=0.1, return_grad=True, out=out)
        else:
            loss_fn = (
                torch.nn.CrossEntropyLoss(label_smoothing=0.1)
                if impl == "torch"
                else CrossEntropyLoss(label_smoothing=0.1)
            )
            x.requires_grad_(True)

            def run():
                x.grad = None
                loss_fn(x, y).backward()
    else:
        features = torch.randn(args.batch, args.hidden, generator=g)
        head = torch.nn.Linear(args.hidden, args.vocab)
        opt = torch.optim.SGD(head.parameters(), lr=0.01)
        if impl == "labelsmooth.torch fused":
            fused = LinearCrossEntropyLoss(label_smoothing=0.1)

            def loss_of():
                return fused(features, head.weight, head.bias, y)
        else:
            loss_fn = (
                torch.nn.CrossEntropyLoss(label_smoothing=0.1)
                if impl == "torch"
                else CrossEntropyLoss(label_smoothing=0.1)
            )

            def loss_of():
                return loss_fn(head(features), y)

        def run():
            opt.zero_grad(set_to_none=True)
            loss_of().backward()
            opt.step()

    base = _rss_mib()
    run()  # warm-up
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return {
        "kind": kind,
        "impl": impl,
        "batch": args.batch,
        "hidden": args.hidden,
        "vocab": args.vocab,
        "threads": args.threads,
        "repeats": args.repeats,
        "median_ms": statistics.median(times) * 1e3,
        "peak_mib": _peak_rss_mib() - base,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m labelsmooth.bench", description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=1024)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--json", action="store_true", help="one JSON object per variant")
    p.add_argument("--only", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for name in ("batch", "hidden", "vocab", "repeats", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    if args.only:
        kind, impl = args.only.split(":", 1)
        print(json.dumps(_one(kind, impl, args)))
        return 0
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    rows = []
    for kind, impl in VARIANTS:
        cmd = [sys.executable, "-m", "labelsmooth.bench", "--only", f"{kind}:{impl}"]
        cmd += [f"--{n}={getattr(args, n)}" for n in ("batch", "hidden", "vocab", "repeats", "threads")]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            print(f"variant {kind}:{impl} failed (exit {out.returncode})", file=sys.stderr)
            return 1
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        print(
            f"batch {args.batch}, hidden {args.hidden}, vocabulary {args.vocab}, "
            f"{args.threads} threads, median of {args.repeats}; torch {rows[0]['torch']}"
        )
        print(f"{'what':6} {'implementation':26} {'median ms':>10} {'vs torch':>9} {'peak MiB':>9} {'vs torch':>9}")
        ref = {r["kind"]: r for r in rows if r["impl"] == "torch"}
        for r in rows:
            t = ref[r["kind"]]
            speed = t["median_ms"] / r["median_ms"]
            mem = t["peak_mib"] / r["peak_mib"] if r["peak_mib"] > 0 else float("inf")
            print(
                f"{r['kind']:6} {r['impl']:26} {r['median_ms']:10.1f} {speed:8.2f}x "
                f"{r['peak_mib']:9.0f} {mem:8.2f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

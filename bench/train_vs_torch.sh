#!/usr/bin/env bash
# Side-by-side training throughput: `labelsmooth bench train` and PyTorch on the same nets, shapes,
# batch size and thread count (bench/torch_anchor.py), in one run.
# Needs PyTorch and torchvision (pip install torch torchvision); PYTHON names the interpreter
# (default python3); the binary is built in CARGO_TARGET_DIR (default target).
# Usage: bench/train_vs_torch.sh [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
python=${PYTHON:-python3}
cargo build --release -q -p labelsmooth-cli
bin=${CARGO_TARGET_DIR:-target}/release/labelsmooth
echo "== $(date -u +%Y-%m-%d) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $threads threads"
"$bin" bench train --threads "$threads" --json \
  --model mlp,cnn,lstm,mobilenet-v2,mobilenet-v2-frozen > /tmp/labelsmooth_train.json
for net in mlp cnn lstm mobilenet-v2 mobilenet-v2-frozen; do
  "$python" bench/torch_anchor.py "$net" "$threads"
done | tee /tmp/torch_train.txt
python3 - <<'PY'
import json, re
rows = {r["model"]: r for r in json.load(open("/tmp/labelsmooth_train.json"))}
torch = {}
for line in open("/tmp/torch_train.txt"):
    m = re.match(r"([\w-]+) epoch .*\((\d+) samples/s\)", line)
    if m:
        torch[m.group(1)] = float(m.group(2))
print("| net | labelsmooth samples/s | PyTorch samples/s | ratio | labelsmooth first epoch | ratio |")
print("|---|---|---|---|---|---|")
for net in ["mlp", "cnn", "lstm", "mobilenet-v2", "mobilenet-v2-frozen"]:
    ours, first = rows[net]["samples_per_s"], rows[net]["first_epoch_samples_per_s"]
    print(f"| {net} | {ours:.0f} | {torch[net]:.0f} | {ours / torch[net]:.2f}x | {first:.0f} | {first / torch[net]:.2f}x |")
PY

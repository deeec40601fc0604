#!/usr/bin/env bash
# Side-by-side training throughput: `labelsmooth bench train` and PyTorch on the same nets, shapes,
# batch size and thread count (bench/torch_anchor.py), in one run.
# Needs PyTorch (pip install torch). Usage: bench/train_vs_torch.sh [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
cargo build --release -q -p labelsmooth-cli
echo "== $(date -u +%Y-%m-%d) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $threads threads"
./target/release/labelsmooth bench train --threads "$threads" --json > /tmp/labelsmooth_train.json
for net in mlp cnn lstm; do python3 bench/torch_anchor.py "$net" "$threads"; done | tee /tmp/torch_train.txt
python3 - <<'PY'
import json, re
ours = {r["model"]: r["samples_per_s"] for r in json.load(open("/tmp/labelsmooth_train.json"))}
torch = {}
for line in open("/tmp/torch_train.txt"):
    m = re.match(r"(\w+) epoch .*\((\d+) samples/s\)", line)
    if m:
        torch[m.group(1)] = float(m.group(2))
print("| net | labelsmooth samples/s | PyTorch samples/s | ratio |")
print("|---|---|---|---|")
for net in ["mlp", "cnn", "lstm"]:
    print(f"| {net} | {ours[net]:.0f} | {torch[net]:.0f} | {ours[net] / torch[net]:.2f}x |")
PY

#!/usr/bin/env bash
# Side-by-side benchmark of the smoothed cross-entropy: labelsmooth and PyTorch, same machine,
# same thread count, same shapes, one run; then the peak memory (max RSS) of each at 512 x 128256.
# Needs PyTorch (pip install torch). Usage: bench/loss_vs_torch.sh [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
cargo build --release -q -p labelsmooth-cli
bin=./target/release/labelsmooth
echo "== $(date -u +%Y-%m-%d) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $threads threads"
$bin bench loss --threads "$threads" --json > /tmp/labelsmooth_loss.json
python3 bench/torch_loss.py --threads "$threads" --json > /tmp/torch_loss.json
python3 - <<'PY'
import json
ours = json.load(open("/tmp/labelsmooth_loss.json"))
torch = json.load(open("/tmp/torch_loss.json"))
print("| n x k | labelsmooth ms | PyTorch ms | speed-up | labelsmooth GB/s | copy GB/s | % of copy |")
print("|---|---|---|---|---|---|---|")
for o, t in zip(ours, torch):
    print(f"| {o['n']} x {o['k']} | {o['median_ms']:.2f} | {t['median_ms']:.1f} | {t['median_ms'] / o['median_ms']:.1f}x "
          f"| {o['gbps']:.1f} | {o['copy_gbps']:.1f} | {100 * o['gbps'] / o['copy_gbps']:.0f}% |")
PY
echo "== peak memory (max RSS) at 512 x 128256; logits + gradient = $((2 * 512 * 128256 * 4 / 1000000)) MB"
/usr/bin/time -v $bin bench loss --threads "$threads" --shapes 512x128256 --copy-bytes 16777216 2>&1 >/dev/null \
  | sed -n 's/.*Maximum resident set size (kbytes): /labelsmooth max RSS kB: /p'
/usr/bin/time -v python3 bench/torch_loss.py --threads "$threads" --shapes 512x128256 2>&1 >/dev/null \
  | sed -n 's/.*Maximum resident set size (kbytes): /PyTorch max RSS kB: /p'

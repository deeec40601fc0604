#!/usr/bin/env bash
# The device check for a GPU machine. A GPU machine may reach no package registry: build the
# binary elsewhere with the GPU feature and copy it over:
#   cargo build --release -p labelsmooth-cli --features wgpu     # on a build machine
#   bench/gpu.sh ./labelsmooth [OUT.json] [--quick]                # on the GPU machine
# It prints the adapter, times `labelsmooth bench loss --device wgpu` (the CubeCL kernel and
# Burn's tensor operations) on the three standard shapes and `bench train --device wgpu` for the three nets (with the CPU path of the same
# binary next to them), and, when PyTorch with CUDA imports there, PyTorch's
# cross_entropy(label_smoothing=0.1) forward + backward on the same shapes; all in one JSON
# (default gpu.json). --quick: small shapes and one epoch, to check the script end to end (on
# Mesa's lavapipe, for instance: those numbers are no GPU figure).
set -euo pipefail
bin=${1:?usage: bench/gpu.sh path/to/labelsmooth [OUT.json] [--quick]}
out=${2:-gpu.json}
quick=${3:-}
python=${PYTHON:-python3}
here=$(cd "$(dirname "$0")" && pwd)
if [ "$quick" = "--quick" ]; then
  shapes=256x1000,64x32000; epochs=1; torch_reps=3; linear="--n 1024 --hidden 64 --vocab 8000 --block-rows 64"
else
  shapes=8192x1000,4096x32000,512x128256; epochs=5; torch_reps=20; linear="--n 4096 --hidden 1024 --vocab 32000"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$tmp}
adapter=$( (command -v vulkaninfo >/dev/null && vulkaninfo --summary 2>/dev/null | grep -m1 deviceName | cut -d= -f2 | xargs) || true)
if [ -z "$adapter" ] && command -v nvidia-smi >/dev/null; then
  adapter=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)
fi
echo "adapter: ${adapter:-(no vulkaninfo or nvidia-smi here: wgpu names it below)}"
"$bin" bench loss --device wgpu --shapes "$shapes" --reps 7 --json > "$tmp/loss_gpu.json"
"$bin" bench loss --device cpu --shapes "$shapes" --reps 3 --json > "$tmp/loss_cpu.json"
# shellcheck disable=SC2086
"$bin" bench linear --device wgpu $linear --reps 3 --json > "$tmp/linear_gpu.json"
"$bin" bench train --device wgpu --model mlp,cnn,lstm --epochs "$epochs" --json > "$tmp/train_gpu.json"
"$bin" bench train --device cpu --model mlp,cnn,lstm --epochs "$epochs" --json > "$tmp/train_cpu.json"
if "$python" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  "$python" "$here/torch_loss.py" --device cuda --shapes "$shapes" --reps "$torch_reps" --json > "$tmp/torch.json"
else
  echo "null" > "$tmp/torch.json"
  echo "PyTorch with CUDA does not import here: no PyTorch figures"
fi
"$python" - "$tmp" "$out" "$adapter" "$quick" <<'PY'
import json, sys
tmp, out, adapter, quick = sys.argv[1:5]
load = lambda name: json.load(open(f"{tmp}/{name}.json"))
doc = {
    "adapter": adapter or None,
    "quick": quick == "--quick",
    "loss_wgpu": load("loss_gpu"), "loss_cpu": load("loss_cpu"),
    "linear_wgpu": load("linear_gpu"),
    "train_wgpu": load("train_gpu"), "train_cpu": load("train_cpu"),
    "torch_cuda_loss": load("torch"),
}
json.dump(doc, open(out, "w"), indent=1)
torch = {(r["n"], r["k"]): r for r in (doc["torch_cuda_loss"] or [])}
gpu = {(r["n"], r["k"], r["path"]): r for r in doc["loss_wgpu"]}
names = {r.get("adapter") for r in doc["loss_wgpu"]} - {None}
if names and not adapter:
    doc["adapter"] = ", ".join(sorted(names))
    json.dump(doc, open(out, "w"), indent=1)
print(f"adapter (as wgpu names it): {doc['adapter']}")
print("| N × K | wgpu kernel ms | kernel GB/s | % of copy | wgpu tensor ops ms | CPU kernel ms | PyTorch CUDA ms |")
print("|---|---|---|---|---|---|---|")
for c in doc["loss_cpu"]:
    g, o = gpu[(c["n"], c["k"], "kernel")], gpu[(c["n"], c["k"], "tensor-ops")]
    t = torch.get((c["n"], c["k"]))
    share = f"{100 * g['fraction_of_copy']:.0f}%" if g.get("fraction_of_copy") else "-"
    print(f"| {c['n']} × {c['k']} | {g['median_ms']:.2f} | {g['gbps']:.1f} | {share} | {o['median_ms']:.2f} | "
          + f"{c['median_ms']:.2f} | " + (f"{t['median_ms']:.2f} |" if t else "- |"))
print("| linear + loss on wgpu | n × h × v | ms | device memory growth MB |")
print("|---|---|---|---|")
for r in doc["linear_wgpu"]:
    print(f"| {r['path']} | {r['n']} × {r['h']} × {r['v']} | {r['median_ms']:.1f} | {r['peak_extra_mb']:.1f} |")
print("| net | wgpu samples/s | CPU samples/s | ratio |")
print("|---|---|---|---|")
for g, c in zip(doc["train_wgpu"], doc["train_cpu"]):
    print(f"| {g['model']} | {g['samples_per_s']:.0f} | {c['samples_per_s']:.0f} | {g['samples_per_s'] / c['samples_per_s']:.2f}x |")
print(f"written: {out}")
PY

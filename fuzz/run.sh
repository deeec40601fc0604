#!/usr/bin/env bash
# Runs every fuzz target (or those named after the time) for SECONDS each on its seeds and the
# corpus it grew, with the limits a reader must keep: no input may take more than 1 s or
# allocate more than 1 GiB. Needs a nightly toolchain and cargo-fuzz; run from anywhere.
#   bash fuzz/run.sh 20                # every target, 20 s each
#   bash fuzz/run.sh 1800 table npy    # two targets, 30 minutes each
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  # Every target but parquet: the parquet crate spins on corrupt Thrift page headers (a list of
  # billions of empty elements, skipped one by one), which libFuzzer reports as a timeout within
  # a minute; the reader gives up after its deadline instead (fuzz/README.md). Name it to run it.
  mapfile -t targets < <(cargo +nightly fuzz list | grep -vx parquet)
fi
cargo +nightly fuzz build -O
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  echo "== $t: ${seconds} s"
  cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -max_total_time="$seconds" -timeout=1 -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -max_len=1048576 -print_final_stats=1 2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|Done)|ERROR|panicked" || true
  if [ -n "$(ls -A "fuzz/artifacts/$t" 2>/dev/null)" ]; then
    echo "fuzz target $t found a failing input: fuzz/artifacts/$t/" >&2
    exit 1
  fi
done

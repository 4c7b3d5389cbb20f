#!/usr/bin/env bash
# Bounded fuzzing run: builds the cargo-fuzz targets in fuzz/ and runs each one from its seed
# corpus for FUZZ_SECONDS seconds (60 by default). Exits non-zero when a target crashes and prints
# the path of the input that reproduces the crash.
#
# Environment:
#   FUZZ_SECONDS    wall-clock seconds per target (default 60)
#   FUZZ_SANITIZER  cargo-fuzz sanitizer: none or address (default none)
#   FUZZ_TARGETS    space-separated targets to run (default: all three)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"
read -r -a targets <<<"${FUZZ_TARGETS:-params timestamp kias_decode}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version

# cargo-fuzz passes nightly-only flags (-Z, -C passes=sancov-module) to rustc. RUSTC_BOOTSTRAP lets
# the stable compiler accept them, so CI needs no nightly toolchain.
export RUSTC_BOOTSTRAP=1
cd fuzz

build_started=$SECONDS
cargo fuzz build --sanitizer "$sanitizer"
echo "fuzz: build took $((SECONDS - build_started)) s"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The targets run at the same time, one process each, so that both cores of a CI machine are
# busy. Each process writes its log to the temporary directory.
declare -A pids
fuzz_started=$SECONDS
for target in "${targets[@]}"; do
  corpus="$work/corpus/$target"
  mkdir -p "$corpus" "artifacts/$target"
  cp "seeds/$target/"* "$corpus/"

  cargo fuzz run --sanitizer "$sanitizer" "$target" "$corpus" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    >"$work/$target.log" 2>&1 &
  pids[$target]=$!
done

failed=()
for target in "${targets[@]}"; do
  status=0
  wait "${pids[$target]}" || status=$?

  executions="$(grep -m1 'stat::number_of_executed_units' "$work/$target.log" | awk '{print $2}' || true)"
  per_second="$(grep -m1 'stat::average_exec_per_sec' "$work/$target.log" | awk '{print $2}' || true)"
  echo "fuzz: $target exited with $status after ${executions:-?} executions, ${per_second:-?} per second"

  if [[ $status -ne 0 ]]; then
    failed+=("$target")
    echo "fuzz: $target failed; the end of its log:"
    tail -n 60 "$work/$target.log"
  fi
done

echo "fuzz: fuzzing took $((SECONDS - fuzz_started)) s"

if [[ ${#failed[@]} -gt 0 ]]; then
  echo "fuzz: crashes in: ${failed[*]}"
  for target in "${failed[@]}"; do
    # libFuzzer names each input it saved as "Test unit written to PATH".
    grep -o 'Test unit written to .*' "$work/$target.log" | while read -r _ _ _ _ reproducer; do
      echo "fuzz: $target reproducer $reproducer"
      echo "      replay it: cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $sanitizer $target $reproducer"
    done
  done
  echo "fuzz: copy each reproducer to fuzz/regressions/<target>/ so that the regression tests replay it"
  exit 1
fi
echo "fuzz: no crashes in ${targets[*]}"

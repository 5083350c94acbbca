#!/usr/bin/env bash
# Runs every cargo-fuzz target (as listed by `cargo fuzz list`) for a bounded
# time. For each target it first replays the inputs in regressions/TARGET/,
# then fuzzes for FUZZ_SECONDS from corpus/TARGET (kept between local runs)
# and seeds/TARGET. A crash, leak, out-of-memory or hang fails the script; the
# new input is copied into regressions/TARGET/ to be committed with the fix.
#
#   FUZZ_SECONDS  fuzzing time per target, in seconds (default 20)
#   FUZZ_RSS_MB   libFuzzer -rss_limit_mb (default 2048)
#   FUZZ_TIMEOUT  libFuzzer -timeout: seconds one input may take (default 10)
set -euo pipefail
shopt -s nullglob
cd "$(dirname "$0")"
DIR="$PWD"

SECS="${FUZZ_SECONDS:-20}"
LIBFUZZER=(-rss_limit_mb="${FUZZ_RSS_MB:-2048}" -timeout="${FUZZ_TIMEOUT:-10}")
# cargo fuzz passes nightly-only flags to rustc; this lets a stable toolchain accept them.
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz --locked" >&2; exit 1; }
TARGETS="$(cargo fuzz list)"
[ -n "$TARGETS" ] || { echo "cargo fuzz list found no targets" >&2; exit 1; }

cargo fetch --locked
cargo fuzz build

failed=()
for t in $TARGETS; do
  echo "--- $t: regressions"
  old=("$DIR/regressions/$t"/*)
  if [ ${#old[@]} -gt 0 ] && ! timeout -k 10 300 cargo fuzz run "$t" "${old[@]}" -- "${LIBFUZZER[@]}"; then
    failed+=("$t: a regression input fails again (see above)")
    continue
  fi
  echo "--- $t: fuzzing ${SECS}s"
  mkdir -p "corpus/$t" "artifacts/$t" target/fuzz-logs
  seeds=()
  [ -d "seeds/$t" ] && seeds=("$DIR/seeds/$t")
  log="$DIR/target/fuzz-logs/$t.log"
  start="$(mktemp)"
  if timeout -k 10 $((SECS + 120)) cargo fuzz run "$t" "$DIR/corpus/$t" "${seeds[@]}" -- \
      "${LIBFUZZER[@]}" -max_total_time="$SECS" -print_final_stats=1 >"$log" 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$log" || true
  else
    tail -n 60 "$log"
    echo "fuzzing $t failed; full log: $log"
    new=$(find "artifacts/$t" -maxdepth 1 -type f -newer "$start" \
      \( -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' -o -name 'timeout-*' \))
    for f in $new; do
      mkdir -p "regressions/$t"
      cp "$f" "regressions/$t/"
      failed+=("$t: new failing input fuzz/regressions/$t/$(basename "$f") (commit it with the fix)")
    done
    [ -n "$new" ] || failed+=("$t: fuzz run failed without an artifact (see $log)")
  fi
  rm -f "$start"
done

if [ ${#failed[@]} -gt 0 ]; then
  printf 'FUZZ FAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzz: all targets passed"

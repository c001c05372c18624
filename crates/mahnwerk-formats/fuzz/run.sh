#!/bin/sh
# Build and run one fuzz target without cargo-fuzz (same flags as `cargo fuzz run`, minus ASan:
# the crate has no unsafe code, panics and hangs are what we look for).
#   fuzz/run.sh TARGET SECONDS      e.g. fuzz/run.sh csv 600
# With cargo-fuzz installed, `cargo +nightly fuzz run TARGET` works the same way.
set -eu
cd "$(dirname "$0")"
target=$1
secs=${2:-60}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-/work/target-formats-fuzz}
RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
  cargo +nightly build --release --target x86_64-unknown-linux-gnu --bin "$target"
mkdir -p "corpus/$target" "artifacts/$target"
"$CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/$target" -max_total_time="$secs" -max_len=65536 -timeout=10 \
  -rss_limit_mb=1024 -artifact_prefix="artifacts/$target/" "corpus/$target" "seeds/$target"

#!/usr/bin/env bash
# A short run of every fuzz target in fuzz/ (cargo-fuzz, libFuzzer) for CI: installs cargo-fuzz
# when missing, then runs each target for FUZZ_SECONDS (default 20) from the committed seeds in
# fuzz/seeds/ plus whatever fuzz/corpus/ holds from earlier runs. Fails on the first crash; the
# crashing input is left in fuzz/artifacts/<target>/.
#
# No nightly toolchain is needed: `--sanitizer none` builds with stable Rust (coverage-guided,
# without AddressSanitizer, which safe Rust does not need). For a long run of one target:
#   cd fuzz && CHATD_SKIP_UI=1 cargo fuzz run --sanitizer none ws_frame -- -max_total_time=600
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-20}
export CHATD_SKIP_UI=1 CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --version 0.13.2 --locked
fi

cargo fuzz build --sanitizer none
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target"
    echo "==> fuzzing $target for ${seconds}s"
    log=$(mktemp)
    if cargo fuzz run --sanitizer none "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|Done [0-9]+ runs|stat::number_of_executed_units)' "$log" || true
        echo "==> $target: no crash"
        rm -f "$log"
    else
        tail -n 60 "$log"
        echo "==> $target: crash (the input is in fuzz/artifacts/$target/)"
        exit 1
    fi
done

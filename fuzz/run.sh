#!/usr/bin/env bash
# Runs every fuzz target, or the ones named, for a number of executions each:
#
#     bash fuzz/run.sh 100000                  # all targets, 100,000 executions each
#     bash fuzz/run.sh 1000000 otpauth_uri     # one target
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); uses `cargo +nightly` when rustup has a
# nightly toolchain, else the current one with RUSTC_BOOTSTRAP=1. Builds every target once
# (release, debug assertions on so that an integer overflow panics), then runs each from its
# committed seeds in fuzz/corpus/<target>/ and a working corpus where new inputs go, so the seeds
# in the tree stay as they are.
#
# FUZZ_TOOLCHAIN  the rustup toolchain to build with (default: nightly if installed, else the
#                 current one)
# FUZZ_WORK       folder for the working corpora and logs (default: a temporary folder, removed
#                 afterwards; set it to keep and grow the corpora between runs)
# FUZZ_BUILD_ARGS the `cargo fuzz build` options (default "-O -a": release with debug assertions,
#                 AddressSanitizer); e.g. "--dev" builds much faster and runs slower
# FUZZ_ARGS       more libFuzzer options, e.g. "-max_total_time=60"
# FUZZ_TARGET_DIR where cargo fuzz builds (default: fuzz/target); a folder kept between runs
#                 makes the next build incremental
#
# A crash leaves its input in fuzz/artifacts/<target>/ (replay it with
# `cargo +nightly fuzz run <target> <file>`); the script still runs the other targets and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

runs="${1:-100000}"
[ $# -gt 0 ] && shift
case "$runs" in '' | *[!0-9]*) echo "usage: bash fuzz/run.sh RUNS [TARGET...]" >&2; exit 2 ;; esac

# cargo fuzz passes -Z flags to rustc (the sanitizer): nightly when rustup has one, otherwise the
# current toolchain with RUSTC_BOOTSTRAP=1 (a stable toolchain ships the sanitizer runtimes too).
toolchain="${FUZZ_TOOLCHAIN:-}"
if [ -z "$toolchain" ] && rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=nightly
fi
case "$toolchain" in
    nightly*) cargo_fuzz() { cargo "+$toolchain" fuzz "$@"; } ;;
    "") cargo_fuzz() { RUSTC_BOOTSTRAP=1 cargo fuzz "$@"; } ;;
    *) cargo_fuzz() { RUSTC_BOOTSTRAP=1 cargo "+$toolchain" fuzz "$@"; } ;;
esac
# shellcheck disable=SC2206 # word splitting of the option strings is meant
build_args=(${FUZZ_BUILD_ARGS:--O -a})
[ -n "${FUZZ_TARGET_DIR:-}" ] && build_args+=(--target-dir "$FUZZ_TARGET_DIR")
# shellcheck disable=SC2206
fuzz_args=(${FUZZ_ARGS:-})

if [ $# -gt 0 ]; then
    targets=("$@")
else
    # A failing `cargo fuzz list` stops the script here (set -e), and so does an empty list:
    # a run of no target proves nothing.
    listed="$(cargo_fuzz list)"
    mapfile -t targets <<<"$listed"
fi
[ -n "${targets[*]}" ] || { echo "fuzz/run.sh: no fuzz target found" >&2; exit 1; }

if [ -n "${FUZZ_WORK:-}" ]; then
    work="$FUZZ_WORK"
    mkdir -p "$work"
else
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
fi

echo "== cargo fuzz build (${#targets[@]} targets)"
start=$SECONDS
cargo_fuzz build "${build_args[@]}"
echo "   built in $((SECONDS - start)) s"

failed=()
for t in "${targets[@]}"; do
    mkdir -p "$work/$t"
    log="$work/$t.log"
    start=$SECONDS
    if cargo_fuzz run "${build_args[@]}" "$t" "$work/$t" "fuzz/corpus/$t" -- \
        -runs="$runs" -timeout=10 -print_final_stats=1 "${fuzz_args[@]}" >"$log" 2>&1; then
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 || true)
        # libFuzzer reports a whole number of executions per second: 0 for a run under a second.
        [ "${rate:-0}" = 0 ] && rate="n/a (under 1 s)"
        echo "ok   $t: ${execs:-?} executions in $((SECONDS - start)) s, ${rate} exec/s, ${cov:-cov: ?}"
    else
        echo "FAIL $t (log: $log)"
        grep -m1 -A12 -E 'panicked at|ERROR: libFuzzer|ERROR: AddressSanitizer' "$log" || tail -n 30 "$log"
        failed+=("$t")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz targets that failed: ${failed[*]} (inputs in fuzz/artifacts/)"
    [ -z "${FUZZ_WORK:-}" ] && trap - EXIT && echo "logs kept in $work"
    exit 1
fi

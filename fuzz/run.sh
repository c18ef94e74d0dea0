#!/usr/bin/env bash
# fuzz/run.sh [seconds-per-harness]   (default 20; the CI budget is about 60 s in total)
#
# Builds the libFuzzer harnesses with clang, ASan and UBSan in build-fuzz/ (override with
# FAS_FUZZ_BUILD_DIR, the compiler with FAS_FUZZ_CC), then runs each harness for the given
# time on a temporary copy of its seed corpus fuzz/corpus/<harness>/ (the committed corpus is
# never modified). Exits non-zero if any harness finds a crash, a sanitizer report, a timeout
# or an out-of-memory; the reproducer is kept in build-fuzz/artifacts/<harness>/ and its hex
# is printed. Re-run one with:  build-fuzz/fuzz/<harness> build-fuzz/artifacts/<harness>/crash-*
#
# Longer runs (nightly, or after touching validation, layout or kernels):
#   fuzz/run.sh 600
# With FAS_FUZZ_KEEP_CORPUS=1 the grown corpora are kept in build-fuzz/corpus/<harness>/ and
# the next run starts from them as well as from the seeds, so repeated long runs accumulate.
# They are not for committing: the seeds stay a handful of small files (< 4 KB each).
# Developer switch: CFLAGS=-DFZ_STATS (on a fresh build dir) prints at exit how often each
# harness reached its main checks.
set -u -o pipefail

secs="${1:-20}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: fuzz/run.sh [seconds-per-harness]" >&2
    exit 2
fi

root="$(cd "$(dirname "$0")/.." && pwd)"
build="${FAS_FUZZ_BUILD_DIR:-$root/build-fuzz}"
cc="${FAS_FUZZ_CC:-clang}"

if ! grep -q 'add_subdirectory(fuzz)' "$root/CMakeLists.txt"; then
    echo "run.sh: $root/CMakeLists.txt has no FAS_FUZZ hook (add_subdirectory(fuzz))" >&2
    exit 2
fi
if ! command -v "$cc" > /dev/null; then
    echo "run.sh: $cc not found (libFuzzer needs clang)" >&2
    exit 2
fi

# harness  max_len  extra libFuzzer flags
harnesses=(
    "fuzz_descriptor  512  -use_value_profile=1"
    "fuzz_format_cast 2048"
    "fuzz_forward     4096 -len_control=0"
)

echo "== configure and build ($build, $cc, ASan+UBSan)"
mkdir -p "$build"
CC="$cc" cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFAS_SANITIZE=ON \
    -DFAS_FUZZ=ON -DFAS_BUILD_TESTS=OFF -DFAS_BUILD_BENCH=OFF -DFAS_BUILD_EXAMPLES=OFF \
    > "$build/configure.log" 2>&1 || { cat "$build/configure.log"; exit 2; }
names=()
for h in "${harnesses[@]}"; do names+=("${h%% *}"); done
cmake --build "$build" -j "$(nproc)" --target "${names[@]}" > "$build/build.log" 2>&1 ||
    { tail -50 "$build/build.log"; exit 2; }

work="$(mktemp -d "${TMPDIR:-/tmp}/fas-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OPENBLAS_NUM_THREADS=1
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}" # no spinning on a shared machine

status=0
summary=()
for h in "${harnesses[@]}"; do
    read -r name max_len extra <<< "$h"
    corpus="$work/corpus/$name"
    artifacts="$build/artifacts/$name"
    rm -rf "$artifacts"
    mkdir -p "$corpus" "$artifacts"
    cp -r "$root/fuzz/corpus/$name/." "$corpus/" 2> /dev/null
    if [ -n "${FAS_FUZZ_KEEP_CORPUS:-}" ] && [ -d "$build/corpus/$name" ]; then
        cp -r "$build/corpus/$name/." "$corpus/"
    fi
    seeds=$(find "$corpus" -type f | wc -l)
    log="$build/$name.log"
    echo "== $name: ${secs}s, $seeds seeds, -max_len=$max_len $extra"
    # shellcheck disable=SC2086  # $extra is a list of flags
    "$build/fuzz/$name" -max_total_time="$secs" -max_len="$max_len" -timeout=20 \
        -rss_limit_mb=3072 -print_final_stats=1 -artifact_prefix="$artifacts/" $extra \
        "$corpus" > "$log" 2>&1
    rc=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    grown=$(find "$corpus" -type f | wc -l)
    if [ "$rc" -eq 0 ]; then
        summary+=("$(printf '%-17s PASS  %8s runs  cov %5s  corpus %4s -> %s' \
            "$name" "${runs:-?}" "${cov:-?}" "$seeds" "$grown")")
    else
        status=1
        summary+=("$(printf '%-17s FAIL  (exit %d)  log %s' "$name" "$rc" "$log")")
        echo "-- $name failed (exit $rc); first report in $log:"
        # the first report: a harness check, a sanitizer error or a libFuzzer timeout/OOM
        awk '/check failed|runtime error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)/ { on = 1 }
             on && !/^ +#[0-9]+ 0x[0-9a-f]+ (in (fuzzer::|__sanitizer|__libc|_start|main )| +\()/ &&
             !/^NOTE|Combine libFuzzer|^$/ { print; n++ }
             /^SUMMARY/ || n >= 24 { exit }' "$log"
        a=$(find "$artifacts" -type f -printf '%T@ %p\n' | sort -nr | head -1 | cut -d' ' -f2-)
        if [ -n "$a" ]; then
            echo "-- reproducer $a ($(wc -c < "$a") bytes), hex:"
            od -An -tx1 -v "$a" | tr -d ' \n' | head -c 8192
            echo
            echo "-- re-run: $build/fuzz/$name $a"
        fi
    fi
    if [ -n "${FAS_FUZZ_KEEP_CORPUS:-}" ]; then
        rm -rf "$build/corpus/$name"
        mkdir -p "$build/corpus"
        cp -r "$corpus" "$build/corpus/$name"
    fi
done

echo "== summary (${secs}s per harness)"
printf '%s\n' "${summary[@]}"
exit $status

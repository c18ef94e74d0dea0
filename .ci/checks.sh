#!/usr/bin/env bash
# Extra CI checks, run by .ci/run after the README's test command (which leaves the Release
# build in ./build):
#   a. ASan + UBSan Debug build, whole unit suite (leak detection on)
#   b. valgrind memcheck of the unit test executables of ./build
#   c. install, then examples/consumer (C) built against it with find_package (shared and static
#      targets) and with pkg-config, and examples/consumer_cxx (a C++-only project)
#   d. minimal build (FAS_OPENMP=OFF, FAS_SIMD=OFF: serial, portable C kernels only, as on a
#      non-x86 or OpenMP-less toolchain): builds with -Werror, links no OpenMP runtime, passes
#      the unit suite
#   e. the public header alone under clang (C11 and C++11, warnings as errors)
#   f. fuzzing for 15 s if fuzz/run.sh exists
#   g. formatting: every C/C++ source as .clang-format says (clang-format 14, --dry-run --Werror)
#   h. aarch64 cross build (cmake/toolchains/aarch64-linux-gnu.cmake: Debian's cross GCC, arm64
#      OpenBLAS and cmocka through multiarch), serial, -Werror, whole unit suite under qemu-aarch64
#      (NEON level against portable bit for bit, fas_simd_level() == "neon")
#   i. BLIS instead of OpenBLAS (FAS_BLAS_VENDOR=FLAME): builds with -Werror, links BLIS, passes the
#      unit suite with FAS_GEMM=blas
# Every step runs even if an earlier one failed; the summary at the end gives each step's
# status and time, and the exit status is non-zero if any step failed.
#
# Environment (all optional): FAS_BUILD_DIR (default ./build) is the README build to check and
# install; FAS_CHECKS_DIR (default ./build-checks) holds this script's builds.
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are left exactly as the environment has them.
# shellcheck disable=SC2317 # the step functions are called indirectly, through run_step
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export DEBIAN_FRONTEND=noninteractive
export FAS_WERROR=1
JOBS=$(nproc)
BUILD=${FAS_BUILD_DIR:-$ROOT/build}
WORK=${FAS_CHECKS_DIR:-$ROOT/build-checks}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# ---- helpers ------------------------------------------------------------------------------------
declare -a SUMMARY=()
FAILED=0
T0=$SECONDS

# run_step <letter> <title> <function>: a clear header, the function in a subshell with errexit
# (so a failing command ends that step only), its time.
run_step()
{
    local letter=$1 title=$2 fn=$3 start rc
    printf '\n==============================================================================\n'
    printf '== %s. %s\n' "$letter" "$title"
    printf '==============================================================================\n'
    start=$SECONDS
    set +e
    (
        set -euo pipefail
        "$fn"
    )
    rc=$?
    set -e
    local secs=$((SECONDS - start)) status=OK
    if [[ $rc -ne 0 ]]; then
        status="FAILED (exit $rc)"
        FAILED=1
    fi
    printf -- '-- %s. %s: %s in %d s\n' "$letter" "$title" "$status" "$secs"
    SUMMARY+=("$(printf '%s. %-52s %-16s %4d s' "$letter" "$title" "$status" "$secs")")
}

# Unit tests registered in a build dir: "name" per line (CTest label "unit").
unit_tests()
{
    ctest --test-dir "$1" -L unit -N | sed -n 's/^ *Test *#[0-9]*: *\([^ ]*\).*/\1/p'
}

# ---- 0. tools -----------------------------------------------------------------------------------
need=()
for pkg in valgrind clang libclang-rt-14-dev clang-format; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [[ ${#need[@]} -gt 0 ]]; then
    echo "installing: ${need[*]}"
    apt-get install -y --no-install-recommends "${need[@]}" ||
        { apt-get update && apt-get install -y --no-install-recommends "${need[@]}"; }
fi
if [[ ! -f $BUILD/CMakeCache.txt ]]; then
    echo "error: $BUILD is not a CMake build; run the README test command first" >&2
    exit 1
fi

# ---- a. ASan + UBSan ----------------------------------------------------------------------------
step_sanitizers()
{
    local dir=$WORK/asan
    cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DFAS_SANITIZE=ON -DFAS_WERROR=ON
    cmake --build "$dir" -j"$JOBS"
    # No suppressions: OpenBLAS and libgomp have produced no LeakSanitizer or UBSan reports.
    # The build uses -fno-sanitize-recover=all, so any UBSan finding also fails the test.
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir "$dir" -L unit --output-on-failure -j"$JOBS"
}

# ---- b. valgrind memcheck -----------------------------------------------------------------------
# One valgrind per unit test executable of the README build, $JOBS at a time, longest first
# (by CTest's recorded costs). check_exports is a cmake -P script, not an executable: skipped.
memcheck_one()
{
    local name=$1 dir=$2 logs=$3 supp=$4 start rc
    start=${EPOCHREALTIME/./}
    set +e
    (cd "$dir/tests" && timeout 1200 valgrind -q --error-exitcode=1 --leak-check=full \
        --show-leak-kinds=definite,possible --errors-for-leak-kinds=definite,possible \
        --num-callers=40 --suppressions="$supp" "./$name") >"$logs/$name.log" 2>&1
    rc=$?
    set -e
    local us=$((${EPOCHREALTIME/./} - start))
    printf '%s %d %d.%d\n' "$name" "$rc" $((us / 1000000)) $((us / 100000 % 10)) >"$logs/$name.result"
}
export -f memcheck_one

step_valgrind()
{
    local logs=$WORK/memcheck costs=$BUILD/Testing/Temporary/CTestCostData.txt
    rm -rf "$logs"
    mkdir -p "$logs"
    local -a names=()
    local name
    for name in $(unit_tests "$BUILD"); do
        if [[ -f $BUILD/tests/$name && -x $BUILD/tests/$name ]]; then
            names+=("$name")
        fi
    done
    [[ ${#names[@]} -gt 0 ]] || { echo "no unit test executables in $BUILD/tests" >&2; return 1; }
    if [[ -f $costs ]]; then
        mapfile -t names < <(for name in "${names[@]}"; do
            awk -v n="$name" '$1 == n { c = $3 } END { printf "%s %s\n", (c == "" ? 1e9 : c), n }' "$costs"
        done | sort -k1,1gr | cut -d' ' -f2)
    fi
    echo "valgrind $(valgrind --version), $JOBS at a time: ${names[*]}"
    printf '%s\n' "${names[@]}" |
        xargs -P "$JOBS" -I{} bash -c 'memcheck_one "$@"' _ {} "$BUILD" "$logs" "$ROOT/.ci/valgrind.supp"
    local bad=0 rc secs
    for name in "${names[@]}"; do
        read -r _ rc secs <"$logs/$name.result"
        if [[ $rc -eq 0 ]]; then
            printf '  %-24s clean   %6.1f s\n' "$name" "$secs"
        else
            printf '  %-24s FAILED  %6.1f s (exit %s)\n' "$name" "$secs" "$rc"
            grep -v '^\[' "$logs/$name.log" | tail -n 200 || true
            bad=1
        fi
    done
    return "$bad"
}

# ---- c. install + consumer ----------------------------------------------------------------------
step_consumer()
{
    local prefix=$WORK/prefix dir=$WORK/consumer-cmake
    rm -rf "$prefix" "$dir" "$WORK/consumer-pkgconfig"
    cmake --install "$BUILD" --prefix "$prefix"

    echo "-- find_package(FusedAttention) with CMAKE_PREFIX_PATH=$prefix"
    cmake -S "$ROOT/examples/consumer" -B "$dir" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS="-Wall -Wextra -Wpedantic -Werror"
    cmake --build "$dir"
    ldd "$dir/consumer" | grep -F "$prefix/" # the installed library, not another copy
    "$dir/consumer"
    if ldd "$dir/consumer_static" | grep -F libfused_attention; then
        echo "consumer_static links the shared library" >&2
        return 1
    fi
    "$dir/consumer_static"

    echo "-- find_package(FusedAttention) from a C++-only project (no C language enabled)"
    local cxxdir=$WORK/consumer-cxx
    rm -rf "$cxxdir"
    cmake -S "$ROOT/examples/consumer_cxx" -B "$cxxdir" -DCMAKE_PREFIX_PATH="$prefix" \
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS="-Wall -Wextra -Wpedantic -Werror"
    cmake --build "$cxxdir"
    ldd "$cxxdir/consumer_cxx" | grep -F "$prefix/"
    "$cxxdir/consumer_cxx"
    "$cxxdir/consumer_cxx_static"

    echo "-- pkg-config fused_attention"
    local pc
    pc=$(find "$prefix" -name fused_attention.pc -print -quit)
    [[ -n $pc ]] || { echo "fused_attention.pc not installed" >&2; return 1; }
    PKG_CONFIG_PATH=$(dirname "$pc")
    export PKG_CONFIG_PATH
    local cflags libs libdir incdir
    cflags=$(pkg-config --cflags fused_attention)
    libs=$(pkg-config --libs fused_attention)
    libdir=$(realpath "$(pkg-config --variable=libdir fused_attention)")
    incdir=$(realpath "$(pkg-config --variable=includedir fused_attention)")
    echo "cflags: $cflags"
    echo "libs:   $libs"
    # The .pc must point into the prefix it was installed to (not the configure-time prefix).
    [[ -f $incdir/fused_attention.h && $incdir == "$prefix"/* ]] ||
        { echo "pkg-config includedir $incdir is not in $prefix" >&2; return 1; }
    [[ $libdir == "$prefix"/* ]] ||
        { echo "pkg-config libdir $libdir is not in $prefix" >&2; return 1; }
    # shellcheck disable=SC2086 # pkg-config output is a list of words
    cc -std=c11 -Wall -Wextra -Wpedantic -Werror "$ROOT/examples/consumer/consumer.c" \
        $cflags $libs -Wl,-rpath,"$libdir" -o "$WORK/consumer-pkgconfig"
    ldd "$WORK/consumer-pkgconfig" | grep -F "$libdir/"
    "$WORK/consumer-pkgconfig"
}

# ---- d. minimal build ---------------------------------------------------------------------------
step_minimal()
{
    local dir=$WORK/minimal
    cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DFAS_OPENMP=OFF -DFAS_SIMD=OFF \
        -DFAS_WERROR=ON
    cmake --build "$dir" -j"$JOBS"
    if ldd "$dir/libfused_attention.so" | grep -E 'libgomp|libomp'; then
        echo "the FAS_OPENMP=OFF library links an OpenMP runtime" >&2
        return 1
    fi
    ctest --test-dir "$dir" -L unit --output-on-failure -j"$JOBS"
}

# ---- e. the header under clang ------------------------------------------------------------------
step_clang_header()
{
    clang -std=c11 -Wall -Wextra -Wpedantic -Wstrict-prototypes -Wmissing-prototypes -Werror \
        -fsyntax-only -I"$ROOT/include" "$ROOT/tests/header_c11.c"
    echo "C11: ok"
    clang++ -std=c++11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I"$ROOT/include" \
        "$ROOT/tests/header_cxx.cpp"
    echo "C++11: ok"
}

# ---- f. fuzzing ---------------------------------------------------------------------------------
step_fuzz()
{
    if [[ -f fuzz/run.sh && -x fuzz/run.sh ]]; then
        fuzz/run.sh 15
    else
        echo "fuzz/run.sh not present or not executable: fuzzing skipped"
    fi
}

# ---- g. formatting ------------------------------------------------------------------------------
step_format()
{
    local -a files
    if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        mapfile -t files < <(git -C "$ROOT" ls-files '*.c' '*.h' '*.cpp')
    else
        mapfile -t files < <(cd "$ROOT" && find include src tests bench examples fuzz \
            -name '*.c' -o -name '*.h' -o -name '*.cpp')
    fi
    echo "$(clang-format --version): ${#files[@]} files"
    (cd "$ROOT" && clang-format --dry-run --Werror "${files[@]}")
}

# ---- h. aarch64 cross build under qemu -------------------------------------------------------------
# Serial (FAS_OPENMP=OFF), which keeps the emulated run short and predictable on two shared
# cores; the OpenMP build cross-compiles too, and its threads run under qemu with the toolchain
# file's loader setup. The toolchain file runs each test through qemu-aarch64 with the cross
# toolchain's loader and libc and OPENBLAS_NUM_THREADS=1.
step_aarch64()
{
    local dir=$WORK/aarch64
    local -a pkgs=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libopenblas-dev:arm64
        libcmocka-dev:arm64 qemu-user)
    local -a missing=()
    local pkg
    for pkg in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$pkg")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        echo "installing: ${missing[*]}"
        dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
        apt-get update
        apt-get install -y --no-install-recommends "${missing[@]}"
    fi
    rm -rf "$dir"
    cmake -S "$ROOT" -B "$dir" -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/toolchains/aarch64-linux-gnu.cmake" \
        -DCMAKE_BUILD_TYPE=Release -DFAS_OPENMP=OFF -DFAS_WERROR=ON
    cmake --build "$dir" -j"$JOBS"
    aarch64-linux-gnu-readelf -h "$dir/libfused_attention.so" | grep -F 'AArch64' # an arm64 library
    ctest --test-dir "$dir" -L unit --output-on-failure -j"$JOBS"
}

# ---- i. another BLAS under the BLAS engine ----------------------------------------------------------
# BLIS (Debian's libblis-dev, FindBLAS vendor FLAME) instead of OpenBLAS: the library must build
# against it (-Werror), really link it (fas_blas_info names it), and pass the unit suite with every
# call on the BLAS engine.
step_blis()
{
    local dir=$WORK/blis
    dpkg-query -W -f='${Status}' libblis-dev 2>/dev/null | grep -q 'install ok installed' ||
        apt-get install -y --no-install-recommends libblis-dev ||
        { apt-get update && apt-get install -y --no-install-recommends libblis-dev; }
    rm -rf "$dir"
    cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DFAS_BLAS_VENDOR=FLAME -DFAS_WERROR=ON \
        -DFAS_PYTHON_TESTS=OFF -DFAS_BUILD_EXAMPLES=OFF
    cmake --build "$dir" -j"$JOBS"
    "$dir/tests/test_engines" | grep -F 'fas_blas_info(): BLIS'
    FAS_GEMM=blas ctest --test-dir "$dir" -L unit -LE engine --output-on-failure -j"$JOBS"
}

run_step a "ASan + UBSan build, unit tests" step_sanitizers
run_step b "valgrind memcheck of the unit tests ($(basename "$BUILD"))" step_valgrind
run_step c "install + consumers (C, C++; find_package, pkg-config)" step_consumer
run_step d "minimal build (FAS_OPENMP=OFF, FAS_SIMD=OFF), unit tests" step_minimal
run_step e "public header under clang (C11, C++11)" step_clang_header
run_step f "fuzzing (fuzz/run.sh 15)" step_fuzz
run_step g "formatting (clang-format --dry-run --Werror)" step_format
run_step h "aarch64 cross build under qemu, unit tests" step_aarch64
run_step i "BLIS (FAS_BLAS_VENDOR=FLAME), unit tests on the BLAS engine" step_blis

printf '\n==============================================================================\n'
printf '== summary (total %d s)\n' "$((SECONDS - T0))"
printf '==============================================================================\n'
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED

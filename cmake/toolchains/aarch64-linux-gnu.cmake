# Cross build for 64-bit ARM Linux with Debian's cross toolchain and multiarch arm64 packages:
#
#   dpkg --add-architecture arm64 && apt-get update
#   apt-get install gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libopenblas-dev:arm64 \
#                   libcmocka-dev:arm64 qemu-user
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#         -DFAS_OPENMP=OFF
#   cmake --build build-aarch64 -j2 && ctest --test-dir build-aarch64 -L unit
#
# No -march/-mcpu flag is set: the build targets the aarch64 baseline (ARMv8-A, NEON included),
# so it runs on every 64-bit ARM CPU; the library picks its level at run time.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(FAS_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${FAS_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${FAS_CROSS_TRIPLE}-g++)

# Debian multiarch: arm64 libraries live in /usr/lib/aarch64-linux-gnu and their
# architecture-specific headers (cblas.h of OpenBLAS) in /usr/include/aarch64-linux-gnu; the
# cross C library is under /usr/aarch64-linux-gnu. With the library architecture set, find_*
# searches <prefix>/lib/aarch64-linux-gnu and <prefix>/include/aarch64-linux-gnu of every root
# below, and never the build machine's own multiarch directories, which are also ignored
# explicitly so that no x86-64 library or header can be picked up by a find module.
set(CMAKE_LIBRARY_ARCHITECTURE ${FAS_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH /usr/${FAS_CROSS_TRIPLE} /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER) # build tools (nm, pkg-config) run on the host
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
foreach(host_arch x86_64-linux-gnu i386-linux-gnu)
  list(APPEND CMAKE_IGNORE_PATH /usr/lib/${host_arch} /lib/${host_arch}
       /usr/include/${host_arch} /usr/lib/${host_arch}/openblas-pthread
       /usr/include/${host_arch}/openblas-pthread)
endforeach()
# pkg-config (FindPkgConfig) looks at the arm64 .pc files only.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/${FAS_CROSS_TRIPLE}/pkgconfig:/usr/share/pkgconfig)

# Tests and other build-tree executables run under user-mode QEMU. -L makes it load the
# program's dynamic loader from the cross toolchain's C library (/usr/aarch64-linux-gnu/lib), and
# LD_LIBRARY_PATH makes that loader take libc, libm, libpthread and libgomp from the same place.
# Without LD_LIBRARY_PATH the loader finds the arm64 multiarch libc (libc6:arm64, pulled in by
# libopenblas-dev:arm64) through /etc/ld.so.cache instead: a loader and a libc of different glibc
# builds, whose private interfaces differ, and pthread_create then spins forever (every
# OpenMP team, OpenBLAS's thread pool at load, any test that starts a thread). The remaining
# arm64 libraries (OpenBLAS, cmocka) come from /usr/lib/aarch64-linux-gnu as usual.
# OPENBLAS_NUM_THREADS=1 is set for the emulated process only: the library runs OpenBLAS on one
# thread per task anyway, and an emulated pool of idle BLAS threads only costs time.
find_program(FAS_QEMU_AARCH64 qemu-aarch64)
if(FAS_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR
      ${FAS_QEMU_AARCH64} -L /usr/${FAS_CROSS_TRIPLE}
      -E LD_LIBRARY_PATH=/usr/${FAS_CROSS_TRIPLE}/lib -E OPENBLAS_NUM_THREADS=1)
endif()

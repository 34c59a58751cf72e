# Cross build for aarch64-linux-gnu (Raspberry Pi 3/4/5 and Zero 2 W, 64-bit OS) with Debian's cross
# compiler (g++-aarch64-linux-gnu) against a sysroot of Debian's arm64 packages (scripts/sysroot.sh).
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake \
#         -DFIELDLINK_SYSROOT=$(bash scripts/sysroot.sh arm64)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(FIELDLINK_TRIPLET aarch64-linux-gnu)
set(FIELDLINK_QEMU qemu-aarch64-static)
include(${CMAKE_CURRENT_LIST_DIR}/sysroot.cmake)

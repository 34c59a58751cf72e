# Cross build for arm-linux-gnueabihf (Raspberry Pi 2/3/4 and Zero 2 W, 32-bit OS) with Debian's cross
# compiler (g++-arm-linux-gnueabihf) against a sysroot of Debian's armhf packages (scripts/sysroot.sh).
#   cmake -S . -B build-armhf -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/arm-linux-gnueabihf.cmake \
#         -DFIELDLINK_SYSROOT=$(bash scripts/sysroot.sh armhf)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(FIELDLINK_TRIPLET arm-linux-gnueabihf)
set(FIELDLINK_QEMU qemu-arm-static)
# GCC notes, for every std::map it passes, that the ARM calling convention for such arguments
# changed in GCC 7.1: nothing here links against code built before that.
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi")
include(${CMAKE_CURRENT_LIST_DIR}/sysroot.cmake)

# Cross build for arm-linux-gnueabihf (Raspberry Pi 2/3/4 and Zero 2 W, 32-bit OS) with Debian's cross
# compiler (g++-arm-linux-gnueabihf) and its multiarch libraries (lib*-dev:armhf): headers under
# /usr/include, libraries and pkg-config files under /usr/lib/arm-linux-gnueabihf.
#   cmake -S . -B build-armhf -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/arm-linux-gnueabihf.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-linux-gnueabihf-gcc)
set(CMAKE_CXX_COMPILER arm-linux-gnueabihf-g++)
set(CMAKE_LIBRARY_ARCHITECTURE arm-linux-gnueabihf)
# pkg-config finds the target's .pc files only.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/arm-linux-gnueabihf/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_SYSROOT_DIR} /)
# The tests' binaries run under qemu-user, with the multiarch libraries of this machine.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-arm-static)
# GCC notes, for every std::map it passes, that the ARM calling convention for such arguments
# changed in GCC 7.1: nothing here links against code built before that.
set(CMAKE_CXX_FLAGS_INIT "-Wno-psabi")

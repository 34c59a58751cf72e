# Cross build for aarch64-linux-gnu (Raspberry Pi 3/4/5 and Zero 2 W, 64-bit OS) with Debian's cross
# compiler (g++-aarch64-linux-gnu) and its multiarch libraries (lib*-dev:arm64): headers under
# /usr/include, libraries and pkg-config files under /usr/lib/aarch64-linux-gnu.
#   cmake -S . -B build-arm64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# pkg-config finds the target's .pc files only.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_SYSROOT_DIR} /)
# The tests' binaries run under qemu-user, with the multiarch libraries of this machine.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64-static)

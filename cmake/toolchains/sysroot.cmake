# The part both cross toolchain files share: the target's libraries and headers come from a sysroot
# of Debian's release suite made by scripts/sysroot.sh (debootstrap --foreign, cached), never from
# this machine's own packages, so the cross build does not depend on this machine's versions.
# The including file sets FIELDLINK_TRIPLET and FIELDLINK_QEMU first.
#   cmake ... -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/<triplet>.cmake -DFIELDLINK_SYSROOT=$(bash scripts/sysroot.sh ARCH)
# (or FIELDLINK_SYSROOT in the environment)
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_C_COMPILER ${FIELDLINK_TRIPLET}-gcc)
set(CMAKE_CXX_COMPILER ${FIELDLINK_TRIPLET}-g++)
set(CMAKE_LIBRARY_ARCHITECTURE ${FIELDLINK_TRIPLET})
if(NOT FIELDLINK_SYSROOT AND DEFINED ENV{FIELDLINK_SYSROOT})
  set(FIELDLINK_SYSROOT $ENV{FIELDLINK_SYSROOT})
endif()
if(NOT FIELDLINK_SYSROOT OR NOT EXISTS "${FIELDLINK_SYSROOT}/usr/lib/${FIELDLINK_TRIPLET}")
  message(FATAL_ERROR "FIELDLINK_SYSROOT ('${FIELDLINK_SYSROOT}') is not a ${FIELDLINK_TRIPLET} sysroot: "
                      "make one with `bash scripts/sysroot.sh ARCH` and pass its path as -DFIELDLINK_SYSROOT=")
endif()
# try_compile projects read this file again: they get the sysroot through the environment.
set(ENV{FIELDLINK_SYSROOT} ${FIELDLINK_SYSROOT})
set(CMAKE_SYSROOT ${FIELDLINK_SYSROOT})
set(CMAKE_FIND_ROOT_PATH ${FIELDLINK_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# pkg-config finds the target's .pc files only, and prefixes their paths with the sysroot.
set(ENV{PKG_CONFIG_LIBDIR} ${FIELDLINK_SYSROOT}/usr/lib/${FIELDLINK_TRIPLET}/pkgconfig:${FIELDLINK_SYSROOT}/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_SYSROOT_DIR} ${FIELDLINK_SYSROOT})
# The tests' binaries run under qemu-user, with the sysroot's dynamic loader and libraries.
set(CMAKE_CROSSCOMPILING_EMULATOR ${FIELDLINK_QEMU} -L ${FIELDLINK_SYSROOT})

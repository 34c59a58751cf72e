#!/usr/bin/env bash
# Installs the Debian 12 packages fieldlink needs to build, test, benchmark and run the demo.
# With --test, also what only the test command needs: the arm64 and armhf cross compilers, the
# libraries of those architectures (Debian multiarch), qemu-user, and podman with runc and
# debootstrap for the container image.
# Runs `apt-get update` once and `apt-get install -y` only when something is missing.
set -euo pipefail
TEST_PACKAGES=false
[ "${1:-}" = "--test" ] && TEST_PACKAGES=true

PACKAGES=(
  build-essential cmake ninja-build pkg-config git python3
  libmodbus-dev libmosquitto-dev mosquitto mosquitto-clients mosquitto-dev
  libyaml-cpp-dev libspdlog-dev libfmt-dev libsystemd-dev nlohmann-json3-dev libcli11-dev
  libssl-dev libserialport-dev libpcre2-dev libcpp-httplib-dev libsqlite3-dev doctest-dev libc-ares-dev
  socat mbpoll systemd go-md2man chromium curl clang libclang-rt-14-dev clang-format clang-tidy libtsan2 libasan8 libubsan1 python3-dnspython
)

# The libraries fieldlink links, for each foreign architecture it is built for (cmake/toolchains/).
# (yaml-cpp: the runtime library only; its -dev package cannot be installed for two architectures)
CROSS_LIBS=(libmodbus-dev libmosquitto-dev libyaml-cpp0.7 libspdlog-dev libfmt-dev libsystemd-dev libssl-dev
  libserialport-dev libpcre2-dev libsqlite3-dev libc-ares-dev libcpp-httplib-dev)
FOREIGN=(arm64 armhf)
if $TEST_PACKAGES; then
  PACKAGES+=(g++-aarch64-linux-gnu g++-arm-linux-gnueabihf qemu-user-static podman runc debootstrap)
  for arch in "${FOREIGN[@]}"; do
    for p in "${CROSS_LIBS[@]}"; do PACKAGES+=("$p:$arch"); done
  done
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "deps.sh: installing ${missing[*]}"
if $TEST_PACKAGES; then
  for arch in "${FOREIGN[@]}"; do
    dpkg --print-foreign-architectures | grep -qx "$arch" || $SUDO dpkg --add-architecture "$arch"
  done
fi
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

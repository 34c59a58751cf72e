#!/usr/bin/env bash
# Installs the Debian 12 packages fieldlink needs to build, test, benchmark and run the demo.
# With --test, also what only the test command needs: the arm64 and armhf cross compilers,
# libfaketime (the wall clock moved under the daemon), qemu-user, debootstrap (the cross builds' target sysroots, scripts/sysroot.sh, and the container
# image's base), podman with runc, promtool (taken from the prometheus package), and node with
# Eclipse Tahu's sparkplug-payload from npm (the Sparkplug B tests' independent decoder).
# No foreign architecture is added to this machine: the cross builds take their target libraries
# from a sysroot of the release suite (scripts/sysroot.sh), so nothing depends on this machine's
# package versions matching the foreign architectures' indexes.
# Runs `apt-get update` (retried) and `apt-get install -y` only when something is missing; a
# failure says which index or package failed and why.
set -euo pipefail
TEST_PACKAGES=false
[ "${1:-}" = "--test" ] && TEST_PACKAGES=true

PACKAGES=(
  build-essential cmake ninja-build pkg-config git python3
  libmodbus-dev libmosquitto-dev mosquitto mosquitto-clients mosquitto-dev
  libyaml-cpp-dev libspdlog-dev libfmt-dev libsystemd-dev nlohmann-json3-dev libcli11-dev
  libssl-dev libserialport-dev libpcre2-dev libmicrohttpd-dev libsqlite3-dev zlib1g-dev doctest-dev libc-ares-dev libcsv-dev
  libprotobuf-c-dev protobuf-c-compiler
  socat mbpoll systemd go-md2man chromium curl clang libclang-rt-14-dev clang-format clang-tidy libtsan2 libasan8 libubsan1 python3-dnspython
)
if $TEST_PACKAGES; then
  PACKAGES+=(g++-aarch64-linux-gnu g++-arm-linux-gnueabihf qemu-user-static debootstrap wget podman runc faketime)
  # Debian's pymodbus: a Modbus server we did not write, for the scan tests (TCP and RTU).
  PACKAGES+=(python3-pymodbus)
  # node and npm run Eclipse Tahu's Sparkplug B decoder (the tests' independent oracle): Debian's,
  # unless the machine has its own node (whose npm would conflict with Debian's package).
  command -v node >/dev/null || PACKAGES+=(nodejs)
  command -v npm >/dev/null || PACKAGES+=(npm)
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
fi
as_root() {
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
    echo "deps.sh: need root or sudo to run: $*" >&2
    exit 1
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive "$@"
}

# Earlier versions of this script added arm64 and armhf to dpkg for multiarch -dev packages; a
# foreign architecture with nothing installed only makes `apt-get update` fetch (and sometimes
# fail on) its indexes, so it is removed again.
for arch in arm64 armhf; do
  if dpkg --print-foreign-architectures | grep -qx "$arch" &&
    ! dpkg-query -W -f='${Architecture}\n' 2>/dev/null | grep -qx "$arch"; then
    echo "deps.sh: removing the unused foreign architecture $arch (cross builds use a sysroot now)"
    as_root dpkg --remove-architecture "$arch"
  fi
done

# promtool (`promtool check metrics` in the tests) comes from Debian's prometheus package, taken
# from the .deb into a cache rather than installed: installing it would start a Prometheus server.
PROMTOOL_DIR=/var/cache/fieldlink-test
want_promtool() { $TEST_PACKAGES && ! command -v promtool >/dev/null && [ ! -x "$PROMTOOL_DIR/promtool" ]; }

# Eclipse Tahu's sparkplug-payload from the npm registry, into the same cache (NODE_PATH of the
# Sparkplug B oracle test), pinned to one version.
TAHU=sparkplug-payload@1.0.3
want_tahu() { $TEST_PACKAGES && [ ! -f "$PROMTOOL_DIR/node_modules/sparkplug-payload/package.json" ]; }
install_tahu() {
  for try in 1 2 3; do
    if as_root npm install --no-audit --no-fund --silent --prefix "$PROMTOOL_DIR" "$TAHU" >"$log" 2>&1; then
      return 0
    fi
    echo "deps.sh: npm install $TAHU failed (try $try of 3):" >&2
    tail -5 "$log" | sed 's/^/  /' >&2
    [ "$try" -lt 3 ] && sleep $((try * 10))
  done
  exit 1
}

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && ! want_promtool && ! want_tahu && exit 0

# apt-get update, up to three times: a mirror in the middle of a sync serves an index whose size
# does not match its Release file for a while. What still fails is named, and the install goes on
# with what could be read: it fails by itself, naming the package, if something is really missing.
log=$(mktemp)
tmp=$(mktemp -d)
trap 'rm -rf "$log" "$tmp"' EXIT
for try in 1 2 3; do
  if as_root apt-get update -qq >"$log" 2>&1; then
    break
  fi
  echo "deps.sh: apt-get update failed (try $try of 3):" >&2
  grep -E '^(E|W):' "$log" | sed 's/^/  /' >&2 || cat "$log" >&2
  [ "$try" -lt 3 ] && sleep $((try * 10))
done

if want_promtool; then
  echo "deps.sh: taking promtool from the prometheus package into $PROMTOOL_DIR"
  if ! (cd "$tmp" && apt-get download prometheus >"$log" 2>&1 &&
    dpkg-deb --fsys-tarfile prometheus_*.deb | tar -x ./usr/bin/promtool); then
    echo "deps.sh: could not download the prometheus package for promtool:" >&2
    cat "$log" >&2
    exit 1
  fi
  as_root install -D -m 0755 "$tmp/usr/bin/promtool" "$PROMTOOL_DIR/promtool"
fi
if [ ${#missing[@]} -eq 0 ]; then
  want_tahu && install_tahu
  exit 0
fi
echo "deps.sh: installing ${missing[*]}"
if ! as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
  echo "deps.sh: apt-get install failed for: ${missing[*]}" >&2
  cat "$log" >&2
  for p in "${missing[@]}"; do
    apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [^(]' ||
      echo "deps.sh: $p: no installable candidate in the package indexes" >&2
  done
  exit 1
fi
want_tahu && install_tahu
exit 0

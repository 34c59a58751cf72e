#!/usr/bin/env bash
# Makes (or finds cached) the target sysroot of a cross build: the libraries fieldlink links and
# their headers, for arm64 or armhf, from Debian's release suite (this machine's codename) on the
# mirror this machine's apt uses. `debootstrap --foreign` resolves the packages and their
# dependencies and downloads them; every one of them is then unpacked (dpkg-deb -x) into the
# sysroot and absolute symbolic links are made relative, so the tree is usable from any path
# (the compilers' --sysroot, pkg-config's PKG_CONFIG_SYSROOT_DIR, qemu-user's -L).
# Nothing is installed on this machine for the foreign architecture, so its own package versions
# (bookworm-security's, say) never have to match the foreign indexes.
#   bash scripts/sysroot.sh arm64     # prints the sysroot's path on its last line
# The sysroot is cached under $FIELDLINK_SYSROOT_CACHE (default /var/cache/fieldlink-sysroot),
# keyed by architecture, suite and package list: a second run on the same machine takes no time.
set -euo pipefail
arch=${1:?usage: sysroot.sh arm64|armhf}
case $arch in
    arm64 | armhf) ;;
    *) echo "sysroot.sh: unknown architecture '$arch' (arm64, armhf)" >&2; exit 2 ;;
esac
# The -dev packages of every library fieldlink links (CMakeLists.txt); the C++ library and its
# headers are the cross compiler's (libstdc++-12-dev-<arch>-cross), of the same GCC release.
PACKAGES=(libc6-dev libmodbus-dev libmosquitto-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
    libsystemd-dev libssl-dev libserialport-dev libpcre2-dev libsqlite3-dev zlib1g-dev libc-ares-dev libmicrohttpd-dev libcsv-dev
    nlohmann-json3-dev libcli11-dev doctest-dev libprotobuf-c-dev)
. /etc/os-release
suite=${FIELDLINK_SYSROOT_SUITE:-$VERSION_CODENAME}
# The mirror this machine's apt reads the release suite from.
mirror=${FIELDLINK_SYSROOT_MIRROR:-$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
    awk -v s="$suite" '$2 == s { print $1; exit }')}
[ -n "$mirror" ] || { echo "sysroot.sh: no apt source for the suite '$suite' (run apt-get update?)" >&2; exit 1; }

cache=${FIELDLINK_SYSROOT_CACHE:-/var/cache/fieldlink-sysroot}
key=$(printf '%s\n' "$arch" "$suite" "$mirror" "${PACKAGES[@]}" | sha256sum | cut -c1-12)
root="$cache/$arch-$suite-$key"
if [ -f "$root/.complete" ]; then
    echo "sysroot.sh: $arch sysroot cached in $root" >&2
    echo "$root"
    exit 0
fi

# Sysroots of this architecture made for another package list or mirror are not used again.
rm -rf "$cache/$arch"-*-????????????* "$root" "$root.tmp"
mkdir -p "$root.tmp"
log="$cache/$arch-debootstrap.log"
echo "sysroot.sh: debootstrap --foreign --arch=$arch $suite from $mirror (log: $log)" >&2
ok=false
for try in 1 2 3; do
    if debootstrap --foreign --arch="$arch" --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
        "$suite" "$root.tmp" "$mirror" >"$log" 2>&1; then
        ok=true
        break
    fi
    echo "sysroot.sh: debootstrap failed (try $try of 3):" >&2
    grep -E '^(E|W):|Couldn.t|Failed|failed' "$log" | tail -5 | sed 's/^/  /' >&2 || tail -5 "$log" >&2
    rm -rf "$root.tmp"
    mkdir -p "$root.tmp"
    [ "$try" -lt 3 ] && sleep $((try * 10))
done
$ok || { echo "sysroot.sh: could not make the $arch sysroot (see $log)" >&2; exit 1; }

# The first stage unpacked only the essential packages: unpack every one it downloaded.
n=0
for deb in "$root.tmp"/var/cache/apt/archives/*.deb; do
    dpkg-deb -x "$deb" "$root.tmp"
    n=$((n + 1))
done
for p in "${PACKAGES[@]}"; do
    ls "$root.tmp"/var/cache/apt/archives/"${p}"_*.deb >/dev/null 2>&1 ||
        { echo "sysroot.sh: $p was not downloaded for $arch" >&2; exit 1; }
done
rm -rf "$root.tmp"/var/cache/apt/archives/*.deb "$root.tmp/debootstrap"
# Absolute links (libfoo.so -> /lib/<triplet>/libfoo.so.1) would point into this machine.
find "$root.tmp" -type l -lname '/*' -print0 | while IFS= read -r -d '' link; do
    target=$(readlink "$link")
    ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$root.tmp$target")" "$link"
done
touch "$root.tmp/.complete"
mv "$root.tmp" "$root"
echo "sysroot.sh: $arch sysroot made in $root ($n packages, $(du -sh "$root" | cut -f1))" >&2
echo "$root"

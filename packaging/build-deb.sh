#!/usr/bin/env bash
# Builds the Debian package of fedproxy for the machine it runs on:
#
#   packaging/build-deb.sh OUTDIR        -> OUTDIR/fedproxy_<version>_<arch>.deb
#
# A release build (meson, -Werror) installed into a staging tree, plus the
# systemd unit, an example config (a conffile) and maintainer scripts that
# create the `fedproxy` system user. Depends: is computed by dpkg-shlibdeps
# from the libraries the binary links on THIS machine, so a package built on
# Debian 12 (with the pinned trixie mbedTLS/llhttp of install-deps.sh) installs
# on Debian 12 with that pinning, and one built on Debian 13 on Debian 13.
# Only dpkg-deb and dpkg-shlibdeps (dpkg-dev) are used: no debhelper.
#
#   FEDPROXY_DEB_BUILDDIR   meson build directory to take the binary from
#                           (default build-deb, set up as a release build;
#                           an existing build directory is used as it is)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 1 ]; then
  echo "usage: packaging/build-deb.sh OUTDIR" >&2
  exit 2
fi
outdir=$1
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
for tool in dpkg-deb dpkg-shlibdeps; do
  if ! command -v "$tool" >/dev/null; then
    echo "build-deb: $tool missing (apt-get install dpkg-dev)" >&2
    exit 1
  fi
done

builddir=${FEDPROXY_DEB_BUILDDIR:-build-deb}
version=$(sed -n "s/^ *version: *'\([^']*\)'.*/\1/p" meson.build | head -1)
arch=$(dpkg --print-architecture)
[ -n "$version" ] || { echo "build-deb: no version in meson.build" >&2; exit 1; }

echo "build-deb: fedproxy $version for $arch"
[ -f "$builddir/build.ninja" ] || meson setup "$builddir" --buildtype=release --prefix=/usr \
  -Db_ndebug=if-release >/dev/null
meson compile -C "$builddir" fedproxy >/dev/null

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
mkdir -p "$root/DEBIAN"
# The binary alone (whatever the build's prefix), stripped.
install -D -m 0755 -s "$builddir/proxy/app/fedproxy" "$root/usr/bin/fedproxy"

install -D -m 0644 packaging/fedproxy.service "$root/usr/lib/systemd/system/fedproxy.service"
install -D -m 0640 packaging/deb/fedproxy.json "$root/etc/fedproxy/fedproxy.json"
install -D -m 0644 packaging/deb/copyright "$root/usr/share/doc/fedproxy/copyright"
install -D -m 0644 packaging/deb/README.Debian "$root/usr/share/doc/fedproxy/README.Debian"
for s in postinst prerm postrm; do
  install -m 0755 "packaging/deb/$s" "$root/DEBIAN/$s"
done
printf '/etc/fedproxy/fedproxy.json\n' > "$root/DEBIAN/conffiles"

# Depends: from the shared libraries of the binary (dpkg-shlibdeps needs a
# debian/control to run in; a throwaway one is enough).
mkdir -p "$stage/src/debian"
printf 'Source: fedproxy\n\nPackage: fedproxy\nArchitecture: any\n' > "$stage/src/debian/control"
depends=$(cd "$stage/src" && dpkg-shlibdeps -O "$root/usr/bin/fedproxy" 2>/dev/null |
          sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "build-deb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: fedproxy
Version: $version
Architecture: $arch
Maintainer: fedproxy developers <fedproxy@localhost>
Installed-Size: $size
Depends: $depends, passwd
Recommends: systemd
Section: net
Priority: optional
Homepage: https://github.com/fedproxy/fedproxy
Description: mTLS federation sidecar
 fedproxy carries a node's federation traffic: TLS 1.3 ingress with
 mandatory client certificates, the peer's identity from its URI SAN,
 per-request grants and rate limits, a hash-chained audit log, egress to
 peers over mTLS, and certificates and policy reloaded without a restart.
EOF

deb="$outdir/fedproxy_${version}_${arch}.deb"
# Files belong to root:root in the package; postinst gives /etc/fedproxy to the
# fedproxy group once the user exists.
dpkg-deb --root-owner-group --build -Zxz "$root" "$deb" >/dev/null
echo "build-deb: $deb ($(du -k "$deb" | cut -f1) KiB)"

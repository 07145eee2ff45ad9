#!/usr/bin/env bash
# Installs everything fedproxy needs to build, test and run its demo, as root,
# on Debian 12 (bookworm) or Debian 13 (trixie).
#
# Debian 12 ships mbedTLS 2.28 (no TLS 1.3) and no llhttp, so on bookworm we
# add a trixie source pinned at priority 50 (never chosen by default) and raise
# only the mbedTLS and llhttp packages to 500. meson comes from
# bookworm-backports (bookworm's 1.0 is fine too, backports is newer).
# Everything else stays on bookworm, even after a later `apt-get upgrade`.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (apt-get is used)" >&2
  exit 1
fi

. /etc/os-release
codename=${VERSION_CODENAME:-unknown}
export DEBIAN_FRONTEND=noninteractive

# Build and test tools shared by both releases. openssl/curl/python3 are the
# real clients the integration tests use.
common_pkgs=(libuv1-dev picojson-dev libroaring-dev doctest-dev pkg-config
             ninja-build g++ openssl curl python3 ca-certificates procps)

case "$codename" in
  bookworm)
    cat > /etc/apt/sources.list.d/fedproxy-trixie.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    cat > /etc/apt/preferences.d/fedproxy-trixie.pref <<'PREF'
Package: *
Pin: release n=trixie
Pin-Priority: 50

Package: libmbedtls-dev libmbedtls21 libmbedx509-7 libmbedcrypto16 libllhttp-dev libllhttp9.2
Pin: release n=trixie
Pin-Priority: 500

Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100

Package: meson
Pin: release n=bookworm-backports
Pin-Priority: 500
PREF
    apt-get update -q
    apt-get install -y -q --no-install-recommends \
      libmbedtls-dev/trixie libllhttp-dev/trixie meson/bookworm-backports \
      "${common_pkgs[@]}"
    ;;
  trixie|forky|sid)
    apt-get update -q
    apt-get install -y -q --no-install-recommends \
      libmbedtls-dev libllhttp-dev meson "${common_pkgs[@]}"
    ;;
  *)
    echo "install-deps: unsupported release '$codename' (need Debian 12 or 13)" >&2
    exit 1
    ;;
esac

# Optional extras: the ASan/UBSan runtime comes with g++; wrk is for benchmarks.
if [ "${FEDPROXY_INSTALL_BENCH:-0}" = 1 ]; then
  apt-get install -y -q --no-install-recommends wrk
fi

if ! pkg-config --atleast-version=3.6 mbedtls; then
  echo "install-deps: mbedTLS >= 3.6 not found after install (got $(pkg-config --modversion mbedtls 2>/dev/null || echo none))" >&2
  exit 1
fi
echo "install-deps: ok (mbedtls $(pkg-config --modversion mbedtls), libuv $(pkg-config --modversion libuv), llhttp $(pkg-config --modversion libllhttp))"

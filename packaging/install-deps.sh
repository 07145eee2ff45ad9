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
# promtool (test tool: `promtool check rules` on examples/monitoring; its own
# package since trixie, so bookworm takes it from trixie: a static Go binary,
# no service) is installed per release below.
# clang + libclang-rt-dev build the libFuzzer targets; python3-yaml parses the
# Kubernetes examples in the tests.
common_pkgs=(libuv1-dev picojson-dev libroaring-dev doctest-dev pkg-config
             ninja-build g++ openssl curl python3 python3-yaml ca-certificates procps
             clang libclang-rt-dev)

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

Package: libmbedtls-dev libmbedtls21 libmbedx509-7 libmbedcrypto16 libllhttp-dev libllhttp9.2 promtool
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
      libmbedtls-dev/trixie libllhttp-dev/trixie promtool/trixie meson/bookworm-backports \
      "${common_pkgs[@]}"
    ;;
  trixie|forky|sid)
    apt-get update -q
    apt-get install -y -q --no-install-recommends \
      libmbedtls-dev libllhttp-dev promtool meson "${common_pkgs[@]}"
    ;;
  *)
    echo "install-deps: unsupported release '$codename' (need Debian 12 or 13)" >&2
    exit 1
    ;;
esac

# Optional extras: the ASan/UBSan runtime comes with g++. The benchmark
# harness (tests/bench/compare.py) needs wrk and the two anchors it measures
# fedproxy against, nginx and HAProxy, all from the running release.
if [ "${FEDPROXY_INSTALL_BENCH:-0}" = 1 ]; then
  apt-get install -y -q --no-install-recommends wrk nginx haproxy
fi

# Test tool, not a dependency: the compose CLI plugin, so that the tests can
# run `docker compose config` on examples/docker-compose (no engine needed).
# Bookworm only has the old Python docker-compose 1.x, so on bookworm we take
# the static Go binary out of trixie's docker-compose package without
# installing that package (the apt pinning above stays as it is).
plugin_dir=/usr/local/lib/docker/cli-plugins
if [ ! -x "$plugin_dir/docker-compose" ] && [ "${FEDPROXY_SKIP_COMPOSE:-0}" != 1 ]; then
  compose_release=trixie
  [ "$codename" = bookworm ] || compose_release=$codename
  tmp=$(mktemp -d)
  if (cd "$tmp" && apt-get download -q "docker-compose/$compose_release" >/dev/null 2>&1); then
    dpkg-deb -x "$tmp"/docker-compose_*.deb "$tmp/x"
    install -D -m 0755 "$tmp/x/usr/libexec/docker/cli-plugins/docker-compose" "$plugin_dir/docker-compose"
    echo "install-deps: compose plugin $("$plugin_dir/docker-compose" version --short 2>/dev/null) in $plugin_dir"
  else
    echo "install-deps: could not download docker-compose from $compose_release; compose test will fail" >&2
  fi
  rm -rf "$tmp"
fi

if ! pkg-config --atleast-version=3.6 mbedtls; then
  echo "install-deps: mbedTLS >= 3.6 not found after install (got $(pkg-config --modversion mbedtls 2>/dev/null || echo none))" >&2
  exit 1
fi
echo "install-deps: ok (mbedtls $(pkg-config --modversion mbedtls), libuv $(pkg-config --modversion libuv), llhttp $(pkg-config --modversion libllhttp))"

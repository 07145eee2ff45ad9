#!/usr/bin/env bash
# Installs everything fedproxy needs to build, test and run its demo, as root,
# on Debian 12 (bookworm) or Debian 13 (trixie).
#
# Debian 12 ships mbedTLS 2.28 (no TLS 1.3) and no llhttp, so on bookworm we
# add trixie and trixie-security pinned at priority 50 (never chosen by
# default) and raise only the mbedTLS and llhttp packages to 500, so their
# security updates come through `apt-get upgrade`. meson comes from
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
# clang + libclang-rt-dev build the libFuzzer targets and the suite's clang
# build; python3-yaml parses the compose and Kubernetes examples in the tests;
# mmdebstrap makes the Debian 13 roots in which packaging/check-trixie-build.sh
# compiles the tree with trixie's g++ and packaging/systemd-check/ boots
# systemd (systemd-container: systemd-nspawn) to run the .deb under it;
# dpkg-dev (dpkg-shlibdeps) builds the .deb (packaging/build-deb.sh).
# libhiredis-dev is the client of the rate_limits Redis backend (SPEC §14),
# each release's own (Debian 12: 0.14.1, Debian 13: 1.2.0; fedproxy uses only
# the API both have, so it is never taken from trixie); redis-server is the
# server the tests of that backend start on a free port; when this script is
# what installed it, the package's own service on 6379 (which the tests do
# not use) is stopped and disabled again.
had_redis=$(dpkg-query -W -f='${Status}' redis-server 2>/dev/null | grep -c 'ok installed' || true)
common_pkgs=(libuv1-dev picojson-dev libroaring-dev doctest-dev libhiredis-dev pkg-config
             ninja-build g++ openssl curl python3 python3-yaml python3-websockets ca-certificates procps
             clang libclang-rt-dev mmdebstrap systemd-container dpkg-dev redis-server)

case "$codename" in
  bookworm)
    cat > /etc/apt/sources.list.d/fedproxy-trixie.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: trixie-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    cat > /etc/apt/preferences.d/fedproxy-trixie.pref <<'PREF'
Package: *
Pin: release n=trixie
Pin-Priority: 50

Package: *
Pin: release n=trixie-security
Pin-Priority: 50

Package: libmbedtls-dev libmbedtls21 libmbedx509-7 libmbedcrypto16 libllhttp-dev libllhttp9.2 promtool
Pin: release n=trixie
Pin-Priority: 500

Package: libmbedtls-dev libmbedtls21 libmbedx509-7 libmbedcrypto16 libllhttp-dev libllhttp9.2
Pin: release n=trixie-security
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
      libmbedtls-dev libllhttp-dev promtool meson/bookworm-backports \
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

if [ "$had_redis" = 0 ] && [ -d /run/systemd/system ]; then
  systemctl disable --now redis-server.service >/dev/null 2>&1 || true
fi

# Optional extras: the ASan/UBSan runtime comes with g++. The benchmark
# harness (tests/bench/compare.py) needs wrk and the two anchors it measures
# fedproxy against, nginx and HAProxy, all from the running release.
if [ "${FEDPROXY_INSTALL_BENCH:-0}" = 1 ]; then
  apt-get install -y -q --no-install-recommends wrk nginx haproxy
fi

# Test tool, not a dependency: the compose v2 CLI, for the optional
# `docker compose config` check of examples/docker-compose in the tests (they
# check compose.yaml without it too) and for running the compose demo. Only
# what Debian ships: Debian 13 has the v2 plugin (package docker-compose,
# /usr/libexec/docker/cli-plugins); Debian 12 has only the Python
# docker-compose 1.x, too old for compose.yaml (`depends_on: required` needs
# v2.20+), so there it says what is missing instead of installing anything.
# FEDPROXY_SKIP_COMPOSE=1: do not install it.
if [ "${FEDPROXY_SKIP_COMPOSE:-0}" != 1 ]; then
  case "$codename" in
    bookworm)
      if ! docker compose version >/dev/null 2>&1; then
        echo "install-deps: note: no docker compose v2 here, and Debian 12 does not ship it" \
             "(its docker-compose package is 1.x). The tests check compose.yaml without it and" \
             "skip \`docker compose config\`; to run the compose demo, install Docker Engine with" \
             "its compose plugin (v2.20 or newer), or use Debian 13 (package docker-compose)." >&2
      fi
      ;;
    *)
      apt-get install -y -q --no-install-recommends docker-compose
      ;;
  esac
fi

if ! pkg-config --atleast-version=3.6 mbedtls; then
  echo "install-deps: mbedTLS >= 3.6 not found after install (got $(pkg-config --modversion mbedtls 2>/dev/null || echo none))" >&2
  exit 1
fi
echo "install-deps: ok (mbedtls $(pkg-config --modversion mbedtls), libuv $(pkg-config --modversion libuv), llhttp $(pkg-config --modversion libllhttp))"

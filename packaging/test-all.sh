#!/usr/bin/env bash
# Installs what fedproxy needs (as root, Debian 12 or 13), builds it with
# -Wall -Wextra -Werror, and runs the whole test suite: unit tests and
# integration tests against the real binary, then all of it again under
# ASan+UBSan+LeakSanitizer (a leak makes fedproxy's exit code non-zero, which
# the integration tests check), a LeakSanitizer stress run (10,000 dropped
# connections, 5,000 reloads) and 60 s of each libFuzzer target. meson
# prints the totals.
#
# It also compiles the whole tree with Debian 13's g++ in a cached trixie root
# (packaging/check-trixie-build.sh: what the image's build stage uses, so a
# missing #include fails here and not in `docker build`) and with clang, both
# with -Werror, and runs the unit suite in both. Where a Docker daemon answers,
# it builds the image and runs the compose demo's smoke check
# (packaging/compose-smoke.sh); otherwise it prints a SKIP line saying why.
# It builds the Debian package (packaging/build-deb.sh) and runs it under a
# real systemd booted in systemd-nspawn (packaging/systemd-check/run.sh).
#
#   FEDPROXY_SKIP_INSTALL=1   do not run the apt install step
#   FEDPROXY_SKIP_TRIXIE=1    skip the Debian 13 (trixie root) build
#   FEDPROXY_SKIP_CLANG=1     skip the clang build
#   FEDPROXY_SKIP_DOCKER=1    skip the image build and compose smoke check
#   FEDPROXY_SKIP_SYSTEMD=1   skip the .deb under a real systemd (systemd-nspawn)
#   FEDPROXY_SKIP_ASAN=1      skip the sanitizer build
#   FEDPROXY_SKIP_FUZZ=1      skip the libFuzzer build and the 60 s fuzz runs
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${FEDPROXY_SKIP_INSTALL:-0}" != 1 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    ./packaging/install-deps.sh
  elif ! pkg-config --atleast-version=3.6 mbedtls 2>/dev/null; then
    echo "test-all: dependencies missing; run as root or run packaging/install-deps.sh first" >&2
    exit 1
  fi
fi

jobs=$(nproc)

echo "== build (release with debug info, -Werror)"
[ -f build/build.ninja ] || meson setup build
meson compile -C build -j "$jobs"

echo "== tests"
meson test -C build --print-errorlogs --num-processes "$jobs"

echo "== Debian package: build it, run it under a real systemd"
mkdir -p build/deb
rm -f build/deb/fedproxy_*.deb
FEDPROXY_DEB_BUILDDIR=build ./packaging/build-deb.sh build/deb
if [ "${FEDPROXY_SKIP_SYSTEMD:-0}" != 1 ]; then
  ./packaging/systemd-check/run.sh build/deb/fedproxy_*.deb
else
  echo "SKIP: the .deb under a real systemd (FEDPROXY_SKIP_SYSTEMD=1)"
fi

if [ "${FEDPROXY_SKIP_TRIXIE:-0}" != 1 ]; then
  echo "== Debian 13 toolchain: the whole tree in a trixie root, -Werror, unit suite"
  if [ "$(. /etc/os-release; echo "${VERSION_CODENAME:-}")" = trixie ]; then
    echo "SKIP: trixie root build (this host is Debian 13: the build above used its g++)"
  elif [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: trixie root build (needs root for mmdebstrap and chroot; FEDPROXY_SKIP_TRIXIE=1 to silence)"
  else
    FEDPROXY_JOBS=$jobs ./packaging/check-trixie-build.sh
  fi
else
  echo "SKIP: trixie root build (FEDPROXY_SKIP_TRIXIE=1)"
fi

if [ "${FEDPROXY_SKIP_CLANG:-0}" != 1 ]; then
  echo "== clang: the whole tree, -Werror, unit suite"
  command -v clang++ >/dev/null || { echo "test-all: clang++ missing (packaging/install-deps.sh)" >&2; exit 1; }
  # plain (-O0): the front end's warnings are what this build is for, and it
  # compiles in half the time of an optimised build.
  [ -f build-clang/build.ninja ] || CXX=clang++ meson setup build-clang --buildtype=plain -Dwerror=true
  meson compile -C build-clang -j "$jobs"
  meson test -C build-clang --suite unit --print-errorlogs --num-processes "$jobs"
  echo "clang: OK: $(clang++ --version | head -n1): whole tree with -Werror, unit suite passed"
else
  echo "SKIP: clang build (FEDPROXY_SKIP_CLANG=1)"
fi

if [ "${FEDPROXY_SKIP_DOCKER:-0}" = 1 ]; then
  echo "SKIP: docker image build (FEDPROXY_SKIP_DOCKER=1)"
elif ! command -v docker >/dev/null; then
  echo "SKIP: docker image build (no Docker daemon: the docker CLI is not installed)"
elif ! docker_err=$(docker info 2>&1 >/dev/null); then
  echo "SKIP: docker image build (no Docker daemon: $(printf '%s\n' "$docker_err" | grep -v '^\s*$' | tail -n1))"
else
  echo "== docker: image build, compose demo smoke check"
  docker build -f packaging/Dockerfile -t fedproxy:local .
  ./packaging/compose-smoke.sh
fi

if [ "${FEDPROXY_SKIP_ASAN:-0}" != 1 ]; then
  echo "== all tests under ASan+UBSan"
  [ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
  meson compile -C build-asan -j "$jobs"
  # RSS bounds of the streaming tests are for the release build; ASan's
  # shadow memory and quarantine need more.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  FEDTEST_RSS_LIMIT_MIB=400 \
    meson test -C build-asan --print-errorlogs --num-processes "$jobs"

  # LeakSanitizer stress (the sanitized fedproxy exits non-zero on a leak,
  # which both tests check): 10,000 connections dropped at random points of
  # the handshake and of the request (2 workers), and 5,000 reloads.
  echo "== LeakSanitizer stress: 10000 dropped connections, 5000 reloads"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  FEDPROXY_BIN="$PWD/build-asan/proxy/app/fedproxy" PYTHONPATH=tests/integration PYTHONDONTWRITEBYTECODE=1 \
    FEDTEST_CHURN=10000 python3 tests/integration/test_churn.py
  FEDPROXY_BIN="$PWD/build-asan/proxy/app/fedproxy" PYTHONPATH=tests/integration PYTHONDONTWRITEBYTECODE=1 \
    FEDTEST_RELOAD_LOOP=5000 python3 tests/integration/test_reload.py ReloadLoopTest
  unset ASAN_OPTIONS UBSAN_OPTIONS
fi

if [ "${FEDPROXY_SKIP_FUZZ:-0}" != 1 ]; then
  # libFuzzer targets (tests/fuzz/README.md), built with clang under
  # ASan+UBSan; each runs 60 s on a copy of its seed corpus.
  echo "== fuzz (clang, libFuzzer, 60 s per target)"
  command -v clang++ >/dev/null || { echo "test-all: clang++ missing (packaging/install-deps.sh)" >&2; exit 1; }
  [ -f build-fuzz/build.ninja ] || CXX=clang++ meson setup build-fuzz -Dfuzz=true \
    -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debugoptimized
  # Only the fuzz executables and what they link (the unit tests are
  # already covered by the two builds above).
  meson compile -C build-fuzz -j "$jobs" fuzz_http_request fuzz_http_response fuzz_config \
    fuzz_target fuzz_tls_server fuzz_peer_identity fuzz_session_machine
  ./tests/fuzz/run-fuzzers.sh 60 build-fuzz
fi
echo "== all tests passed"

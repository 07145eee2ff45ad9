#!/usr/bin/env bash
# Installs what fedproxy needs (as root, Debian 12 or 13), builds it with
# -Wall -Wextra -Werror, and runs the whole test suite: unit tests and
# integration tests against the real binary, then all of it again under
# ASan+UBSan+LeakSanitizer (a leak makes fedproxy's exit code non-zero, which
# the integration tests check). meson prints the totals.
#
#   FEDPROXY_SKIP_INSTALL=1   do not run the apt install step
#   FEDPROXY_SKIP_ASAN=1      skip the sanitizer build
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

if [ "${FEDPROXY_SKIP_ASAN:-0}" != 1 ]; then
  echo "== all tests under ASan+UBSan"
  [ -f build-asan/build.ninja ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbuildtype=debug
  meson compile -C build-asan -j "$jobs"
  # RSS bounds of the streaming tests are for the release build; ASan's
  # shadow memory and quarantine need more.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  FEDTEST_RSS_LIMIT_MIB=400 \
    meson test -C build-asan --print-errorlogs --num-processes "$jobs"
fi
echo "== all tests passed"

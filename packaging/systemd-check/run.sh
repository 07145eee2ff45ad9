#!/usr/bin/env bash
# The .deb under a real systemd, on a machine whose own PID 1 is not systemd
# (CI, containers):
#
#   packaging/systemd-check/run.sh path/to/fedproxy_<version>_<arch>.deb
#
# Boots a Debian 13 root with systemd in systemd-nspawn (--ephemeral: every
# run starts from the same clean root), where the oneshot unit
# fedproxy-check.service runs inner.sh: dpkg -i, a PKI, systemctl start
# (Type=notify), reload with a good config, a broken one and one that needs a
# restart, stop, a start on a taken port, purge. Prints inner.sh's lines and
# exits with its failure count.
#
# The root is made once with mmdebstrap and cached in
# $FEDPROXY_CACHE_DIR/systemd-root (default /var/cache/fedproxy). Without
# root, systemd-nspawn (package systemd-container) or mmdebstrap, or when the
# container cannot boot here, it prints one "SKIP: ..." line and exits 0.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

if [ $# -ne 1 ] || [ ! -f "$1" ]; then
  echo "usage: packaging/systemd-check/run.sh FEDPROXY.deb" >&2
  exit 2
fi
deb=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
skip() { echo "SKIP: the .deb under a real systemd: $*"; exit 0; }

[ "$(id -u)" -eq 0 ] || skip "needs root (systemd-nspawn)"
command -v systemd-nspawn >/dev/null || skip "systemd-nspawn missing (apt-get install systemd-container)"
command -v mmdebstrap >/dev/null || skip "mmdebstrap missing (apt-get install mmdebstrap)"

cache=${FEDPROXY_CACHE_DIR:-/var/cache/fedproxy}
root=$cache/systemd-root
mkdir -p "$cache"
exec 9>"$root.lock"
flock 9
if [ ! -f "$root/.fedproxy-root-ready" ]; then
  echo "systemd-check: making the Debian 13 root with systemd in $root (once)"
  rm -rf "$root.tmp"
  # The runtime libraries of the package (trixie names) are installed here
  # because dpkg -i inside the container has no network to fetch them.
  mmdebstrap --variant=minbase --quiet \
    --include=systemd,systemd-sysv,dbus,curl,openssl,python3,procps,passwd,libmbedtls21,libmbedx509-7,libmbedcrypto16,libllhttp9.2,libuv1t64,libroaring0t64 \
    trixie "$root.tmp" http://deb.debian.org/debian
  cat > "$root.tmp/etc/systemd/system/fedproxy-check.service" <<'UNIT'
[Unit]
Description=fedproxy package check (packaging/systemd-check/inner.sh)
After=multi-user.target
ConditionPathExists=/check/inner.sh

[Service]
Type=oneshot
ExecStart=/bin/sh -c '/bin/sh /check/inner.sh > /check/log 2>&1; echo $? > /check/rc'
ExecStartPost=/usr/bin/systemctl poweroff --no-block
TimeoutStartSec=300

[Install]
WantedBy=multi-user.target
UNIT
  ln -sf /etc/systemd/system/fedproxy-check.service \
    "$root.tmp/etc/systemd/system/multi-user.target.wants/fedproxy-check.service"
  # No login prompt on the console: nothing reads it.
  rm -f "$root.tmp/etc/systemd/system/getty.target.wants/"* 2>/dev/null || true
  touch "$root.tmp/.fedproxy-root-ready"
  rm -rf "$root"
  mv "$root.tmp" "$root"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$deb" "$work/fedproxy.deb"
cp "$here/inner.sh" "$work/inner.sh"
# hiredis has another soname on each release (libhiredis0.14 on Debian 12,
# libhiredis1.1.0 on 13) and the root cannot fetch packages: bring the one
# the package depends on, from this host's release, which built it.
mkdir -p "$work/deps"
for pkg in $(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed 's/(.*//; s/[[:space:]]//g' | grep '^libhiredis' || true); do
  (cd "$work/deps" && apt-get download -q "$pkg" >/dev/null 2>&1) || skip "cannot download $pkg (apt-get download)"
done

echo "systemd-check: booting $root (ephemeral) with $(basename "$deb")"
set +e
timeout 400 systemd-nspawn --quiet --register=no --keep-unit --ephemeral \
  --console=pipe --machine="fedproxy-check-$$" -D "$root" --bind="$work:/check" -b \
  > "$work/console" 2>&1 </dev/null
boot_rc=$?
set -e
if [ ! -f "$work/rc" ]; then
  tail -20 "$work/console" >&2
  skip "the container did not run the check (systemd-nspawn exit $boot_rc)"
fi
cat "$work/log"
rc=$(cat "$work/rc")
echo "systemd-check: $rc failure(s)"
exit "$rc"

#!/usr/bin/env bash
# Compiles the whole tree (libraries, fedproxy, unit tests, benches) with
# Debian 13's toolchain, as the Dockerfile's build stage does, but without
# Docker: in a trixie root made by mmdebstrap and entered with chroot. -Werror
# stays on, so a missing #include or a new g++ 14 warning fails here instead
# of in `docker build`. Then it runs the unit suite there (as the image build
# does). Needs root (mmdebstrap, mount, chroot) and mmdebstrap
# (packaging/install-deps.sh installs it).
#
# The root is kept between runs (measured on a busy 2-core machine: the
# first run made a ~410 MB root in ~9.5 min and compiled everything in
# ~12 min; later runs only recompile what changed, a few seconds when nothing did). It holds exactly the packages of the
# Dockerfile's build stage (read from packaging/Dockerfile): when that list
# changes they are installed into it, and every FEDPROXY_TRIXIE_REFRESH_DAYS
# it gets `apt-get upgrade`. The build directory is build-trixie/ in the
# source tree (incremental, like build-asan/).
#
#   FEDPROXY_TRIXIE_ROOT          the root (default /var/cache/fedproxy/trixie-root)
#   FEDPROXY_TRIXIE_MIRROR        Debian mirror (default http://deb.debian.org/debian)
#   FEDPROXY_TRIXIE_SECURITY      security mirror (default http://deb.debian.org/debian-security)
#   FEDPROXY_TRIXIE_REFRESH_DAYS  upgrade the root when older (default 7)
#   FEDPROXY_TRIXIE_BUILDDIR      build directory in the tree (default build-trixie)
#   FEDPROXY_TRIXIE_UNIT=0        compile only, do not run the unit suite
#   FEDPROXY_JOBS                 parallel jobs (default nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

root=${FEDPROXY_TRIXIE_ROOT:-/var/cache/fedproxy/trixie-root}
mirror=${FEDPROXY_TRIXIE_MIRROR:-http://deb.debian.org/debian}
security=${FEDPROXY_TRIXIE_SECURITY:-http://deb.debian.org/debian-security}
refresh_days=${FEDPROXY_TRIXIE_REFRESH_DAYS:-7}
builddir=${FEDPROXY_TRIXIE_BUILDDIR:-build-trixie}
jobs=${FEDPROXY_JOBS:-$(nproc)}
run_unit=${FEDPROXY_TRIXIE_UNIT:-1}

say() { echo "check-trixie-build: $*"; }
die() { echo "check-trixie-build: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap, mount, chroot); or set FEDPROXY_SKIP_TRIXIE=1"
command -v mmdebstrap >/dev/null || die "mmdebstrap missing: apt-get install mmdebstrap (packaging/install-deps.sh)"
case $builddir in /*|*..*|'') die "FEDPROXY_TRIXIE_BUILDDIR must be a relative path in the tree" ;; esac

# The build stage's packages, as the Dockerfile lists them (one parser:
# the one tests/integration/test_packaging.py checks them with).
mapfile -t pkgs < <(PYTHONPATH="$src/tests/integration" PYTHONDONTWRITEBYTECODE=1 python3 - <<'PY'
import os
from test_packaging import DOCKERFILE, dockerfile_stages, stage_packages
with open(DOCKERFILE) as f:
    stages = dockerfile_stages(f.read())
build = next(s for s in stages if s["name"] == "build")
print("\n".join(sorted(set(stage_packages(build)))))
PY
)
[ "${#pkgs[@]}" -gt 0 ] || die "no packages found in the Dockerfile's build stage"
want="${pkgs[*]}"

mkdir -p "$(dirname "$root")"
# One run at a time per root (other worktrees may share it).
exec 9>"$root.lock"
flock 9

# Runs a command in the root, in a private mount namespace: /proc, /dev, a
# fresh /tmp and the source tree at /src are mounted only for this command
# and vanish with it (nothing to unmount, even after a failure).
in_root() {
  unshare --mount --propagation private -- /bin/bash -euc '
    r=$1; s=$2; shift 2
    mount -t proc proc "$r/proc"
    mount --rbind /dev "$r/dev"
    mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
    mkdir -p "$r/src"
    mount --bind "$s" "$r/src"
    exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
      LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"' in_root "$root" "$src" "$@"
}

stamp=$root/.fedproxy-packages
t0=$(date +%s)
if [ ! -f "$stamp" ]; then
  # New root: made in a temporary directory and renamed when complete, so an
  # interrupted run never leaves a half-made root that looks usable.
  rm -rf "$root".new
  say "creating the trixie root in $root (mmdebstrap; once)"
  mmdebstrap --mode=root --variant=apt --format=directory \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --include="$(IFS=,; echo "${pkgs[*]}")" \
    trixie "$root".new \
    "deb $mirror trixie main" "deb $mirror trixie-updates main" "deb $security trixie-security main"
  echo "$want" > "$root".new/.fedproxy-packages
  rm -rf "$root"
  mv "$root".new "$root"
  how="created in $(( $(date +%s) - t0 )) s"
elif [ "$(cat "$stamp")" != "$want" ] || [ -n "$(find "$stamp" -mtime +"$refresh_days")" ]; then
  say "updating the trixie root in $root (package list changed or older than $refresh_days days)"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  in_root sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends "$@" && apt-get upgrade -y -q && apt-get clean' sh "${pkgs[@]}"
  echo "$want" > "$stamp"
  how="updated in $(( $(date +%s) - t0 )) s"
else
  how="cached, $(( ($(date +%s) - $(stat -c %Y "$stamp")) / 86400 )) days old"
fi

gxx=$(chroot "$root" g++ --version | head -n1)
say "root $root ($how): $gxx"

# A plain (-O0) build with -Werror: what g++ 14's headers and front end
# refuse (a missing include, a new warning) fails here as it would fail the
# image's build stage, in about half the time of an optimised build. The
# image itself builds with --buildtype=release -Dwerror=false. The tree is at
# /src inside the root; the build directory lives in the tree.
t1=$(date +%s)
in_root /bin/bash -euc '
  cd /src
  [ -f "$1/build.ninja" ] || meson setup "$1" --buildtype=plain -Dwerror=true
  meson compile -C "$1" -j "$2"
  if [ "$3" = 1 ]; then
    meson test -C "$1" --suite unit --print-errorlogs --num-processes "$2"
  fi' trixie-build "$builddir" "$jobs" "$run_unit"
what="compiled the whole tree with -Werror (plain, -O0)"
[ "$run_unit" = 1 ] && what="$what and passed the unit suite"
say "OK: $what with $gxx in a Debian 13 root ($(( $(date +%s) - t1 )) s; root $how)"

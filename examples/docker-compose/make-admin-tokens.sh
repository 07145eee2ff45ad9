#!/usr/bin/env bash
# One random admin token per node of the demo, for fedproxy's admin API
# (admin.token_file; without it /status and POST /reload answer 401):
#
#   make-admin-tokens.sh DIR              write DIR/<node>/admin.token for each node
#                                         that has none (existing tokens are kept)
#   make-admin-tokens.sh DIR rotate NODE  a new token for NODE, renamed into place
#                                         (the running fedproxy applies it within
#                                         tls.watch_interval_ms; the old one stops working)
#
# Environment:
#   TOKEN_OWNER=UID:GID   chown the files to the user fedproxy runs as
#                         (compose sets 10001:10001; leave unset on your machine)
#
# Token files are 0400: fedproxy refuses a world-readable one.
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
dir=$1
shift
only=
if [ $# -gt 0 ]; then
  [ "$1" = rotate ] && [ $# -eq 2 ] || usage
  only=$2
fi
nodes=(acme-corp partner-labs)
if [ -n "$only" ] && [[ ! " ${nodes[*]} " == *" $only "* ]]; then
  echo "make-admin-tokens: unknown node '$only' (known: ${nodes[*]})" >&2
  exit 2
fi
umask 077

# write NODE: a new token, written to a temporary name and renamed into place.
write() {
  local out="$dir/$1"
  mkdir -p "$out"
  local tmp
  tmp=$(mktemp "$out/.admin.token.XXXXXX")
  openssl rand -hex 32 > "$tmp"
  chmod 0400 "$tmp"
  if [ -n "${TOKEN_OWNER:-}" ]; then chown "$TOKEN_OWNER" "$tmp" "$out"; fi
  mv -f "$tmp" "$out/admin.token"
  echo "make-admin-tokens: $1: new token in $out/admin.token"
}

for node in "${nodes[@]}"; do
  if [ -n "$only" ]; then
    if [ "$node" = "$only" ]; then write "$node"; fi
  elif [ -s "$dir/$node/admin.token" ]; then
    echo "make-admin-tokens: $node: keeping $dir/$node/admin.token"
  else
    write "$node"
  fi
done

#!/usr/bin/env bash
# Smoke check of the compose demo (examples/docker-compose) against a real
# Docker daemon: starts it (default profile: the make-pki.sh PKI) under its
# own project name, then checks what README.md shows: a federated call in
# each direction answers 200 with the caller's identity headers, and a call
# outside the grant is refused with 403 resource_not_granted. Removes the
# project's containers and volumes at the end. Needs `docker compose` (v2.20+)
# and the image fedproxy:local (packaging/test-all.sh builds it first; compose
# builds it if it is missing).
#
#   FEDPROXY_SMOKE_PROJECT    compose project name (default fedproxy-smoke)
#   FEDPROXY_SMOKE_TIMEOUT    seconds to wait for the first federated call (default 180)
set -euo pipefail
cd "$(dirname "$0")/../examples/docker-compose"

project=${FEDPROXY_SMOKE_PROJECT:-fedproxy-smoke}
timeout=${FEDPROXY_SMOKE_TIMEOUT:-180}
dc() { docker compose -p "$project" "$@"; }
say() { echo "compose-smoke: $*"; }

docker compose version >/dev/null 2>&1 || { say "docker compose v2 is missing" >&2; exit 1; }

# down and run name the default profile (openssl, from .env) and tools, so
# that down removes every container this script can have started.
cleanup() { dc --profile openssl --profile tools down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup

dc up -d
# curl in a node's network namespace, as its app would call (README.md).
call() {  # call NODE URL -> "<status> <body>"
  dc --profile openssl --profile tools run --rm -T "$1-curl" -sS -o /dev/stdout -w '\n%{http_code}' \
    -x http://127.0.0.1:15001 "$2"
}

deadline=$(( $(date +%s) + timeout ))
until out=$(call partner-labs http://acme-corp/api/v1/tasks 2>&1) && [ "${out##*$'\n'}" = 200 ]; do
  if [ "$(date +%s)" -ge "$deadline" ]; then
    say "FAIL: partner-labs -> acme-corp did not answer 200 within ${timeout} s; last answer:" >&2
    printf '%s\n' "$out" >&2
    dc ps -a >&2 || true
    dc logs --tail 50 >&2 || true
    exit 1
  fi
  sleep 3
done
grep -q '"X-Federation-Peer": "partner-labs"' <<<"$out" \
  || { say "FAIL: acme-corp's app did not see partner-labs as the verified peer:" >&2; printf '%s\n' "$out" >&2; exit 1; }

out=$(call acme-corp http://partner-labs/api/v1/datasets)
[ "${out##*$'\n'}" = 200 ] && grep -q '"X-Federation-Peer": "acme-corp"' <<<"$out" \
  || { say "FAIL: acme-corp -> partner-labs:" >&2; printf '%s\n' "$out" >&2; exit 1; }

out=$(call partner-labs http://acme-corp/api/v1/credentials)
[ "${out##*$'\n'}" = 403 ] && grep -q resource_not_granted <<<"$out" \
  || { say "FAIL: a call outside the grant was not refused with 403 resource_not_granted:" >&2; printf '%s\n' "$out" >&2; exit 1; }

say "OK: compose demo up (project $project); partner-labs <-> acme-corp federated calls 200 with verified identity headers, out-of-grant call 403 resource_not_granted"

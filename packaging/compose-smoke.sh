#!/usr/bin/env bash
# Smoke check of the compose demo (examples/docker-compose) against a real
# Docker daemon: starts it (default profile: the make-pki.sh PKI) under its
# own project name, then checks what README.md shows: a federated call in
# each direction answers 200 with the caller's identity headers, a call
# outside the grant is refused with 403 resource_not_granted, both of
# acme-corp's replicas report rate_limits.state "shared" (Valkey), and a
# burst spread over both replicas gets the grant's burst once, not once per
# replica. Removes the
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

# acme-corp's two replicas share their limits through valkey: each reports
# rate_limits.state "shared" once it is connected (a few seconds after start).
status() {  # status NODE -> its admin /status (JSON)
  dc --profile openssl --profile tools run --rm -T --entrypoint sh "$1-curl" -c \
    'curl -sS -H "Authorization: Bearer $(cat /admin/admin.token)" http://127.0.0.1:9901/status'
}
rate_limits_state() {
  status "$1" 2>/dev/null \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["rate_limits"]["state"])' 2>/dev/null || true
}
for node in acme-corp acme-corp-2; do
  deadline=$(( $(date +%s) + 60 ))
  until [ "$(rate_limits_state "$node")" = shared ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      say "FAIL: $node does not report rate_limits.state \"shared\" within 60 s; its /status:" >&2
      status "$node" >&2 || true
      dc logs --tail 50 valkey "$node-fedproxy" >&2 || true
      exit 1
    fi
    sleep 2
  done
done

# The grant allows 5/s, burst 10, for both replicas together. 30 calls in
# one curl (kept-alive connections, well under a second), alternating between
# the replicas: replica 1 by its name, replica 2 as "localhost" (a DNS name of
# acme-corp's certificate) connected to acme-corp-2. Two separate buckets
# would let about 20 through; the shared one about 10 (plus the refill during
# the burst and the tokens each replica leases ahead).
sleep 3  # the bucket refills after the calls above
codes=$(dc --profile openssl --profile tools run --rm -T --entrypoint sh partner-labs-curl -c '
  set --
  i=0
  while [ "$i" -lt 15 ]; do
    set -- "$@" -o /dev/null https://acme-corp:8443/api/v1/notes -o /dev/null https://localhost:8443/api/v1/notes
    i=$((i + 1))
  done
  curl -sS -w "%{http_code}\n" --cert /certs/tls.crt --key /certs/tls.key \
    --cacert /certs/peer-cas/acme-corp.crt --connect-to localhost:8443:acme-corp-2:8443 "$@"' 2>&1) || true
ok=$(grep -c '^200$' <<<"$codes" || true)
limited=$(grep -c '^429$' <<<"$codes" || true)
if [ "$((ok + limited))" -ne 30 ] || [ "$ok" -lt 5 ] || [ "$ok" -gt 15 ]; then
  say "FAIL: 30 calls over both replicas: $ok answered 200 and $limited 429 (want 5..15 and the rest 429):" >&2
  printf '%s\n' "$codes" | tr '\n' ' ' >&2; echo >&2
  exit 1
fi

say "OK: compose demo up (project $project); partner-labs <-> acme-corp federated calls 200 with verified identity headers, out-of-grant call 403 resource_not_granted, acme-corp's 2 replicas share limits through valkey ($ok of 30 calls passed the shared burst of 10)"

#!/usr/bin/env bash
# The fedproxy demo: a two-node federation on 127.0.0.1. Builds fedproxy if
# needed, makes a demo PKI, starts two organisations' nodes — acme-corp
# (fedproxy + its app) and partner-labs (fedproxy + its app) — and shows
# partner-labs' app calling acme-corp's app through both sidecars (egress →
# mTLS → ingress), then what policy, TLS and the HTTP codec refuse, and the
# admin API with and without the node's admin token (made at random here). Stops
# everything it started. On a fresh Debian 12/13 machine run it as root (it installs the
# build dependencies first).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work="$here/run"
bin="$repo/build/proxy/app/fedproxy"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# The port a listener bound (fedproxy logs {"msg":"listening","listener":NAME,"address":...}).
listener_port() {
  grep -o "\"listener\":\"$2\",\"address\":\"127.0.0.1:[0-9]*\"" "$1" | grep -o '[0-9]*"$' | tr -d '"' || true
}
# Wait (at most 10 s) until process PID has logged all the listeners named.
wait_listening() {
  local pid=$1 log=$2; shift 2
  for _ in $(seq 100); do
    local missing=0
    for name in "$@"; do [ -n "$(listener_port "$log" "$name")" ] || missing=1; done
    [ "$missing" = 0 ] && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.1
  done
  echo "fedproxy did not start listening in 10 s" >&2; cat "$log"; exit 1
}

if ! pkg-config --atleast-version=3.6 mbedtls 2>/dev/null || ! command -v meson >/dev/null; then
  say "installing build dependencies (packaging/install-deps.sh)"
  "$repo/packaging/install-deps.sh"
fi
if [ ! -x "$bin" ] || [ -n "$(find "$repo/proxy" "$repo/config" "$repo/policy" "$repo/certwatch" -newer "$bin" -name '*.[ch]pp' 2>/dev/null | head -1)" ]; then
  say "building fedproxy"
  [ -f "$repo/build/build.ninja" ] || meson setup "$repo/build" "$repo" >/dev/null
  meson compile -C "$repo/build" proxy/app/fedproxy >/dev/null
fi

rm -rf "$work"
mkdir -p "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

say "making a demo PKI (one CA per organisation: acme-corp, partner-labs, other-org, beta-org)"
"$here/make-pki.sh" "$work/pki" >/dev/null
openssl x509 -in "$work/pki/partner.crt" -noout -subject -ext subjectAltName | sed 's/^/  /'

say "making an admin token per node (random, mode 0600): the admin API needs it"
for node in acme partner beta; do (umask 077; openssl rand -hex 32 > "$work/$node-admin.token"); done
ls -l "$work"/*-admin.token | awk '{print "  " $1, $NF}'
# curl for the admin API of a node: admin_curl NODE URL [curl args...]
admin_curl() { local node=$1; shift; curl -sS -H "Authorization: Bearer $(cat "$work/$node-admin.token")" "$@"; }

say "starting acme-corp's example app (the local app its fedproxy protects)"
python3 "$here/app.py" "$work/app.port" 2>"$work/app.log" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/app.port" ] && break; sleep 0.1; done
app_port=$(cat "$work/app.port")
echo "  example app on 127.0.0.1:$app_port"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
acme_ingress=$(free_port)  # published in acme-corp's manifest (node.endpoints), so fixed before start
cat > "$work/fedproxy.json" <<JSON
{
  "node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a",
           "endpoints": ["https://127.0.0.1:$acme_ingress"]},
  "tls": {"cert": "pki/node.crt", "key": "pki/node.key", "ca_bundle": "pki/acme-ca.crt", "watch_interval_ms": 1000},
  "ingress": {"listen": "127.0.0.1:$acme_ingress", "upstream": "127.0.0.1:$app_port"},
  "egress": null,
  "admin": {"listen": "127.0.0.1:0", "token_file": "acme-admin.token"},
  "state": {"path": "acme-state.json"},
  "peering": {"listen": "127.0.0.1:0"},
  "peers": [{"org": "partner-labs", "entity_uri": "spiffe://partner-labs.example/nodes/primary",
             "ca_bundle": "pki/partner-ca.crt", "trust_domain": "partner-labs.example"},
            {"org": "other-org", "entity_uri": "spiffe://other-org.example/nodes/a",
             "ca_bundle": "pki/other-ca.crt", "trust_domain": "other-org.example"}],
  "routes": [{"prefix": "/api/v1/tasks", "resource": "tasks"},
             {"prefix": "/api/v1/notes", "resource": "notes"},
             {"prefix": "/api/v1/credentials", "resource": "credentials"}],
  "grants": [{"id": "7d0c6a8e-3f7b-4e55-9a51-2b7f4c1d9e21", "peer": "partner-labs",
              "resources": ["tasks", "notes"], "methods": ["GET", "HEAD"],
              "filters": {"tasks": {"include_teams": ["t1"]}}, "max_rows_per_query": 100,
              "rate_limit": {"rps": 5, "burst": 5}, "status": "active"}],
  "audit": {"path": "audit.jsonl"}
}
JSON

say "starting acme-corp's fedproxy (ingress: mTLS, policy, audit)"
"$bin" run --config "$work/fedproxy.json" 2>"$work/fedproxy.log" &
pids+=($!)
fed_pid=$!
wait_listening "$fed_pid" "$work/fedproxy.log" ingress admin peering
port=$(listener_port "$work/fedproxy.log" ingress); admin=$(listener_port "$work/fedproxy.log" admin)
peering=$(listener_port "$work/fedproxy.log" peering)
echo "  ingress (mTLS) on 127.0.0.1:$port, admin on 127.0.0.1:$admin"

say "starting partner-labs' node: its app and its fedproxy (egress: the app calls peers over mTLS)"
python3 "$here/app.py" "$work/app-a.port" 2>"$work/app-a.log" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/app-a.port" ] && break; sleep 0.1; done
cat > "$work/partner.json" <<JSON
{
  "node": {"org": "partner-labs", "entity_uri": "spiffe://partner-labs.example/nodes/primary"},
  "tls": {"cert": "pki/partner.crt", "key": "pki/partner.key", "ca_bundle": "pki/partner-ca.crt"},
  "ingress": {"listen": "127.0.0.1:0", "upstream": "127.0.0.1:$(cat "$work/app-a.port")"},
  "egress": {"listen": "127.0.0.1:0", "heartbeat_interval_ms": 2000},
  "admin": {"listen": "127.0.0.1:0", "token_file": "partner-admin.token"},
  "manifests_dir": "peers",
  "peers": [{"org": "acme-corp", "endpoints": ["https://127.0.0.1:$port"],
             "ca_bundle": "pki/acme-ca.crt", "trust_domain": "acme.example"}]
}
JSON
"$bin" manifest fetch acme-corp --endpoint "https://127.0.0.1:$port" --config "$work/partner.json" | sed 's/^/  /'
echo "  (stored only because the certificate that served it carries the manifest's entity_uri and chains to acme-corp's own CA)"
"$bin" run --config "$work/partner.json" 2>"$work/partner.log" &
pids+=($!)
partner_pid=$!
wait_listening "$partner_pid" "$work/partner.log" egress admin
egress=$(listener_port "$work/partner.log" egress); padmin=$(listener_port "$work/partner.log" admin)
echo "  partner-labs egress (plain HTTP, loopback only) on 127.0.0.1:$egress"

say "0. partner-labs' app calls acme-corp's app: app → partner-labs egress → mTLS → acme-corp ingress → app"
echo "  \$ curl -x http://127.0.0.1:$egress 'http://acme-corp/api/v1/tasks?limit=100000'"
curl -sS -x "http://127.0.0.1:$egress" -w '  -> HTTP %{http_code}\n' "http://acme-corp/api/v1/tasks?limit=100000" | sed 's/^/  /'
echo "  (acme-corp's app saw partner-labs' verified identity and grant; limit=100000 was cut to max_rows_per_query=100)"
sleep 0.3
admin_curl partner "http://127.0.0.1:$padmin/status" | python3 -c 'import json,sys; [print("  partner-labs sees peer", p["org"], "state:", p["state"]) for p in json.load(sys.stdin)["peers"]]'

curl_as() { local who=$1; shift; curl -sS --tlsv1.3 --cert "$work/pki/$who.crt" --key "$work/pki/$who.key" --cacert "$work/pki/acme-ca.crt" "$@"; }
curl_peer() { curl_as partner "$@"; }

say "1. the same call straight to acme-corp's ingress with curl --cert (TLS 1.3, mTLS)"
echo "  the client certificate carries URI SAN spiffe://partner-labs.example/nodes/primary and grant id 7d0c6a8e-..."
echo "  \$ curl --cert partner.crt ... -H 'X-Federation-Peer: spoofed' 'https://localhost:$port/api/v1/tasks?limit=100000'"
curl_peer -H 'X-Federation-Peer: spoofed' -w '  -> HTTP %{http_code}\n' "https://localhost:$port/api/v1/tasks?limit=100000" | sed 's/^/  /'
echo "  (the spoofed header never reached the app; limit=100000 was cut to the grant's max_rows_per_query=100)"

say "2. the grant does not cover credentials: denied by policy, never forwarded"
curl_peer -w '\n  -> HTTP %{http_code}\n' "https://localhost:$port/api/v1/credentials" | sed 's/^/  /'
echo "  reaching it through a dot segment: parsers could disagree, so it is refused before policy"
curl_peer -w '\n  -> HTTP %{http_code}\n' "https://localhost:$port/api/v1/notes/../credentials" --path-as-is | sed 's/^/  /'

say "3. a burst beyond the grant's rate limit (burst 5) gets 429 with Retry-After"
codes=""
for _ in $(seq 8); do codes="$codes $(curl_peer -o /dev/null -w '%{http_code}' "https://localhost:$port/api/v1/notes")"; done
echo "  status codes:$codes"

say "4. the same request without a client certificate is refused at the handshake"
if curl -sS --tlsv1.3 --cacert "$work/pki/acme-ca.crt" "https://localhost:$port/api/v1/tasks" 2>&1 | sed 's/^/  curl: /'; then :; fi
sleep 0.2
grep '"handshake_failed"' "$work/fedproxy.log" | tail -1 | sed 's/^/  fedproxy log: /'

say "5. a smuggling attempt (Content-Length + Transfer-Encoding) gets a JSON 400 and never reaches the app"
curl_peer -H 'Transfer-Encoding: chunked' -H 'Content-Length: 5' --data-binary 'hello' \
  -w '\n  -> HTTP %{http_code}\n' "https://localhost:$port/api/v1/tasks" | sed 's/^/  /'

say "6. admin: probes and metrics are open; everything else needs the node's admin token"
curl -sS "http://127.0.0.1:$admin/healthz" | sed 's/^/  /'
curl -sS "http://127.0.0.1:$admin/metrics" | grep -E '^fedproxy_(requests_total|handshake_failures_total)' | grep -v ' 0$' | sed 's/^/  /'
echo "  \$ curl -X POST http://127.0.0.1:$admin/reload                       (no token)"
curl -sS -X POST -w '\n  -> HTTP %{http_code}\n' "http://127.0.0.1:$admin/reload" | sed 's/^/  /'
echo "  \$ curl -X POST -H 'Authorization: Bearer <acme-admin.token>' http://127.0.0.1:$admin/reload"
admin_curl acme -X POST -w '  -> HTTP %{http_code}\n' "http://127.0.0.1:$admin/reload" | sed 's/^/  /'
echo "  a web page's request (DNS rebinding, cross-site form) is refused even with the token:"
admin_curl acme -X POST -H "Host: evil.example:$admin" -w '\n  -> HTTP %{http_code}\n' "http://127.0.0.1:$admin/reload" | sed 's/^/  /'
admin_curl acme -X POST -H 'Origin: http://evil.example' -w '\n  -> HTTP %{http_code}\n' "http://127.0.0.1:$admin/reload" | sed 's/^/  /'

say "7. each organisation speaks only for itself: other-org's CA cannot issue partner-labs' identity"
echo "  acme-corp names each peer's own CA (peers[].ca_bundle); /status shows them:"
admin_curl acme "http://127.0.0.1:$admin/status" | python3 -c 'import json,sys
for p in json.load(sys.stdin)["peers"]:
    print("   ", p["org"], "only when issued by:", ", ".join(a["subject"] for a in p["trust_anchors"]) or "tls.ca_bundle")'
echo "  a certificate with partner-labs' URI SAN, signed by other-org's CA (trusted, but for other-org only):"
curl_as impostor -w '\n  -> HTTP %{http_code}\n' "https://localhost:$port/api/v1/tasks" | sed 's/^/  /'
echo "  other-org's own certificate is still other-org (it has no grant here):"
curl_as other -w '\n  -> HTTP %{http_code}\n' "https://localhost:$port/api/v1/tasks" | sed 's/^/  /'

say "8. a new organisation joins with a token: beta-org (its own CA), no file copied by hand"
python3 "$here/app.py" "$work/app-b.port" 2>"$work/app-b.log" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/app-b.port" ] && break; sleep 0.1; done
beta_ingress=$(free_port)
cat > "$work/beta.json" <<JSON
{
  "node": {"org": "beta-org", "entity_uri": "spiffe://beta.example/nodes/a",
           "endpoints": ["https://127.0.0.1:$beta_ingress"]},
  "tls": {"cert": "pki/beta.crt", "key": "pki/beta.key", "ca_bundle": "pki/beta-ca.crt"},
  "ingress": {"listen": "127.0.0.1:$beta_ingress", "upstream": "127.0.0.1:$(cat "$work/app-b.port")"},
  "egress": {"listen": "127.0.0.1:0", "heartbeat_interval_ms": 1000},
  "admin": {"listen": "127.0.0.1:0", "token_file": "beta-admin.token"},
  "state": {"path": "beta-state.json"}
}
JSON
echo "  beta-org starts with no peer at all (state.path: peers come at run time)"
"$bin" run --config "$work/beta.json" 2>"$work/beta.log" &
pids+=($!)
beta_pid=$!
wait_listening "$beta_pid" "$work/beta.log" egress admin
begress=$(listener_port "$work/beta.log" egress); badmin=$(listener_port "$work/beta.log" admin)
echo '{"resources": ["tasks"], "methods": ["GET"], "status": "active"}' > "$work/beta-grant.json"
echo "  acme-corp: \$ fedproxy peer invite beta-org --ttl 15m --grant beta-grant.json --admin 127.0.0.1:$admin --token-file acme-admin.token"
token=$("$bin" peer invite beta-org --ttl 15m --grant "$work/beta-grant.json" --admin "127.0.0.1:$admin" \
  --token-file "$work/acme-admin.token")
echo "  token (single use; pins acme-corp's CA): ${token:0:22}...${token: -16}"
echo "  beta-org:  \$ fedproxy peer join https://127.0.0.1:$peering --token \$TOKEN --admin 127.0.0.1:$badmin --token-file beta-admin.token"
"$bin" peer join "https://127.0.0.1:$peering" --token "$token" --admin "127.0.0.1:$badmin" \
  --token-file "$work/beta-admin.token" | sed 's/^/  /'
echo "  beta-org's app calls acme-corp through its own egress:"
curl -sS -x "http://127.0.0.1:$begress" -w '  -> HTTP %{http_code}\n' "http://acme-corp/api/v1/tasks" | sed 's/^/  /'
echo "  the same token again (replay):"
if "$bin" peer join "https://127.0.0.1:$peering" --token "$token" --admin "127.0.0.1:$badmin" \
  --token-file "$work/beta-admin.token" 2>&1 | sed 's/^/  /'; then :; fi
kill -TERM "$beta_pid"
wait "$beta_pid" || true

say "stopping the fedproxy processes (SIGTERM: drains, then exits 0)"
kill -TERM "$partner_pid"
wait "$partner_pid" || true
kill -TERM "$fed_pid"
rc=0; wait "$fed_pid" || rc=$?
echo "  fedproxy exited with $rc; its log is in $work/fedproxy.log"

say "9. the audit log: one hash-chained line per request and event"
head -n 2 "$work/audit.jsonl" | cut -c1-220 | sed 's/$/ .../; s/^/  /'
"$bin" audit verify "$work/audit.jsonl" | sed 's/^/  /'
say "demo done"

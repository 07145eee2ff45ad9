#!/usr/bin/env bash
# The fedproxy demo: builds fedproxy if needed, makes a demo PKI, starts an
# example app and fedproxy in front of it on 127.0.0.1, then sends real
# requests through it with curl and shows what happened. Stops everything it
# started. On a fresh Debian 12/13 machine run it as root (it installs the
# build dependencies first).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
work="$here/run"
bin="$repo/build/proxy/app/fedproxy"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

if ! pkg-config --atleast-version=3.6 mbedtls 2>/dev/null || ! command -v meson >/dev/null; then
  say "installing build dependencies (packaging/install-deps.sh)"
  "$repo/packaging/install-deps.sh"
fi
if [ ! -x "$bin" ] || [ -n "$(find "$repo/proxy" "$repo/policy" "$repo/certwatch" -newer "$bin" -name '*.[ch]pp' 2>/dev/null | head -1)" ]; then
  say "building fedproxy"
  [ -f "$repo/build/build.ninja" ] || meson setup "$repo/build" "$repo" >/dev/null
  meson compile -C "$repo/build" proxy/app/fedproxy >/dev/null
fi

rm -rf "$work"
mkdir -p "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

say "making a demo PKI (one CA, node cert for acme-corp, client cert for partner-labs)"
"$here/make-pki.sh" "$work/pki" >/dev/null
openssl x509 -in "$work/pki/partner.crt" -noout -subject -ext subjectAltName | sed 's/^/  /'

say "starting the example app (the local app fedproxy protects)"
python3 "$here/app.py" "$work/app.port" 2>"$work/app.log" &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/app.port" ] && break; sleep 0.1; done
app_port=$(cat "$work/app.port")
echo "  example app on 127.0.0.1:$app_port"

cat > "$work/fedproxy.json" <<JSON
{
  "node": {"org": "acme-corp", "entity_uri": "spiffe://acme.example/nodes/a"},
  "tls": {"cert": "pki/node.crt", "key": "pki/node.key", "ca_bundle": "pki/ca.crt"},
  "ingress": {"listen": "127.0.0.1:0", "upstream": "127.0.0.1:$app_port"},
  "egress": null,
  "admin": {"listen": "127.0.0.1:0"},
  "authenticate_only": true
}
JSON

say "starting fedproxy"
"$bin" run --config "$work/fedproxy.json" 2>"$work/fedproxy.log" &
pids+=($!)
fed_pid=$!
port=""; admin=""
for _ in $(seq 100); do
  port=$(grep -o '"listener":"ingress","address":"127.0.0.1:[0-9]*"' "$work/fedproxy.log" | grep -o '[0-9]*"$' | tr -d '"' || true)
  admin=$(grep -o '"listener":"admin","address":"127.0.0.1:[0-9]*"' "$work/fedproxy.log" | grep -o '[0-9]*"$' | tr -d '"' || true)
  [ -n "$port" ] && [ -n "$admin" ] && break
  kill -0 "$fed_pid" 2>/dev/null || { cat "$work/fedproxy.log"; exit 1; }
  sleep 0.1
done
echo "  ingress (mTLS) on 127.0.0.1:$port, admin on 127.0.0.1:$admin"

say "1. partner-labs calls acme-corp's app through fedproxy (curl --cert, TLS 1.3, mTLS)"
echo "  \$ curl --cert partner.crt --key partner.key --cacert ca.crt -H 'X-Federation-Peer: spoofed' https://localhost:$port/api/v1/tasks"
curl -sS --tlsv1.3 --cert "$work/pki/partner.crt" --key "$work/pki/partner.key" --cacert "$work/pki/ca.crt" \
  -H 'X-Federation-Peer: spoofed' -w '  -> HTTP %{http_code}, %{ssl_verify_result} verify, %{time_total}s\n' \
  "https://localhost:$port/api/v1/tasks" | sed 's/^/  /'
echo "  (the spoofed X-Federation-Peer header never reached the app; fedproxy added the verified identity)"

say "2. the same request without a client certificate is refused at the handshake"
if curl -sS --tlsv1.3 --cacert "$work/pki/ca.crt" "https://localhost:$port/api/v1/tasks" 2>&1 | sed 's/^/  curl: /'; then :; fi
sleep 0.2
grep '"handshake_failed"' "$work/fedproxy.log" | tail -1 | sed 's/^/  fedproxy log: /'

say "3. a smuggling attempt (Content-Length + Transfer-Encoding) gets a JSON 400 and never reaches the app"
curl -sS --tlsv1.3 --cert "$work/pki/partner.crt" --key "$work/pki/partner.key" --cacert "$work/pki/ca.crt" \
  -H 'Transfer-Encoding: chunked' -H 'Content-Length: 5' --data-binary 'hello' \
  -w '\n  -> HTTP %{http_code}\n' "https://localhost:$port/api/v1/tasks" | sed 's/^/  /'

say "4. admin: /healthz and a few metrics"
curl -sS "http://127.0.0.1:$admin/healthz" | sed 's/^/  /'
curl -sS "http://127.0.0.1:$admin/metrics" | grep -E '^fedproxy_(requests_total|handshake_failures_total)' | sed 's/^/  /'

say "stopping fedproxy (SIGTERM: drains, then exits 0)"
kill -TERM "$fed_pid"
rc=0; wait "$fed_pid" || rc=$?
echo "  fedproxy exited with $rc; its log is in $work/fedproxy.log"
say "demo done"

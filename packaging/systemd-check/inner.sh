#!/bin/sh
# Runs inside a booted systemd container (packaging/systemd-check/run.sh), as
# the oneshot unit fedproxy-check.service: installs the fedproxy .deb in
# /check, gives it a PKI, and drives it with systemctl as an operator would.
# Every step prints "ok: ..." or "FAIL: ..."; the exit code is the number of
# failures. Bounded: every wait has a deadline.
set -u
failures=0
ok() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
check() {  # check "what" command...: ok when the command succeeds
  what=$1; shift
  if "$@" >/tmp/out 2>&1; then ok "$what"; else fail "$what: $(tail -5 /tmp/out)"; fi
}
check_fails() {
  what=$1; shift
  if "$@" >/tmp/out 2>&1; then fail "$what (it succeeded)"; else ok "$what"; fi
}
prop() { systemctl show -P "$1" fedproxy.service; }

echo "systemd $(systemctl --version | head -1 | cut -d' ' -f2), $(. /etc/os-release; echo "$PRETTY_NAME")"
for dep in /check/deps/*.deb; do
  [ -f "$dep" ] || continue
  if ! dpkg -i "$dep" >/tmp/out 2>&1; then
    echo "FAIL: dpkg -i $(basename "$dep"): $(tail -5 /tmp/out)"
    exit 1
  fi
done
if ! dpkg -i /check/fedproxy.deb >/tmp/out 2>&1; then
  echo "FAIL: dpkg -i the package: $(tail -5 /tmp/out)"
  exit 1
fi
ok "dpkg -i the package"
check "the fedproxy user exists" getent passwd fedproxy
check "unit is known" systemctl cat fedproxy.service
[ "$(prop Type)" = notify ] && ok "Type=notify" || fail "Type is $(prop Type)"

# A PKI where the example config points: this node's CA and certificate, the
# peer's own CA.
pki=$(mktemp -d)
(
  cd "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
    -out ca.crt -days 30 -subj "/O=example-org/CN=example-org CA" 2>/dev/null
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout pca.key \
    -out pca.crt -days 30 -subj "/O=partner-example/CN=partner CA" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout node.key \
    -out node.csr -subj "/O=example-org/CN=node-1" 2>/dev/null
  printf 'subjectAltName=URI:spiffe://example-org.example/nodes/node-1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=critical,digitalSignature\nbasicConstraints=critical,CA:FALSE\n' > ext
  openssl x509 -req -in node.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 \
    -extfile ext -out node.crt 2>/dev/null
)
install -o root -g fedproxy -m 0644 "$pki/node.crt" /etc/fedproxy/certs/tls.crt
install -o root -g fedproxy -m 0640 "$pki/node.key" /etc/fedproxy/certs/tls.key
install -o root -g fedproxy -m 0644 "$pki/ca.crt" /etc/fedproxy/certs/ca.crt
install -o root -g fedproxy -m 0644 "$pki/pca.crt" /etc/fedproxy/peer-cas/partner-example.crt
cfg=/etc/fedproxy/fedproxy.json
cp "$cfg" /tmp/good.json

check "fedproxy check on the example config" fedproxy check --config "$cfg"

# Type=notify: `systemctl start` returns once fedproxy sent READY=1.
check "systemctl start" timeout 30 systemctl start fedproxy
[ "$(prop ActiveState)" = active ] && ok "active after start" || fail "ActiveState $(prop ActiveState)"
check "healthz answers right after start returned" \
  curl -fsS --max-time 5 http://127.0.0.1:9901/healthz
status=$(prop StatusText)
[ -n "$status" ] && ok "STATUS= reached systemd: $status" || fail "no StatusText"
pid1=$(prop MainPID)

check "systemctl reload (good config)" timeout 30 systemctl reload fedproxy
[ "$(prop ActiveState)" = active ] && ok "active after reload" || fail "ActiveState $(prop ActiveState) after reload"

# A broken config: the reload fails, systemctl says so, the old snapshot serves.
sed 's/"routes"/"routez"/' /tmp/good.json > "$cfg"
check_fails "systemctl reload fails on a broken config" timeout 30 systemctl reload fedproxy
[ "$(prop ActiveState)" = active ] && ok "still active after the failed reload" \
  || fail "ActiveState $(prop ActiveState) after a failed reload"
check "still serving after the failed reload" curl -fsS --max-time 5 http://127.0.0.1:9901/healthz
echo "  StatusText after the failed reload: $(prop StatusText)"

# A change that needs a restart is not a plain success either.
sed 's/"0.0.0.0:8443"/"0.0.0.0:8444"/' /tmp/good.json > "$cfg"
check_fails "systemctl reload fails when a restart is required" timeout 30 systemctl reload fedproxy

cp /tmp/good.json "$cfg"
check "systemctl reload succeeds again" timeout 30 systemctl reload fedproxy
[ "$(prop MainPID)" = "$pid1" ] && ok "same process after reloads" || fail "MainPID changed"

# Stop: STOPPING=1, drain, the audit log's last record is "stop".
check "systemctl stop" timeout 60 systemctl stop fedproxy
[ "$(prop Result)" = success ] && ok "stopped with Result=success" || fail "Result $(prop Result)"
if tail -1 /var/log/fedproxy/audit.jsonl | grep -q '"stop"'; then ok "audit log ends with stop"
else fail "last audit line: $(tail -1 /var/log/fedproxy/audit.jsonl)"; fi

# A port that cannot be bound: the start fails with exit 2, nothing claims to listen.
python3 -c 'import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 8443)); s.listen(); time.sleep(60)' &
holder=$!
sleep 1
systemctl reset-failed fedproxy 2>/dev/null
since=$(date '+%Y-%m-%d %H:%M:%S')
check_fails "systemctl start fails while 8443 is taken" timeout 30 systemctl start fedproxy
[ "$(prop ExecMainStatus)" = 2 ] && ok "exit status 2" || fail "ExecMainStatus $(prop ExecMainStatus)"
log=$(journalctl -u fedproxy --since "$since" -o cat 2>/dev/null)
echo "$log" | grep -q '8443' && ok "the journal names the address" || fail "journal: $log"
echo "$log" | grep -q '"listening"' && fail "a listener claimed to listen: $log" || ok "nothing claimed to listen"
kill "$holder" 2>/dev/null

check "apt/dpkg purge" dpkg --purge fedproxy
[ -d /var/log/fedproxy ] && ok "purge kept the audit log" || fail "purge removed /var/log/fedproxy"

echo "failures: $failures"
exit "$failures"

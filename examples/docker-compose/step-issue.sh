#!/usr/bin/env bash
# Issues the demo node certificates, each from its own organisation's step-ca
# service (compose profile "step-ca": <org>-step-ca); runs in the
# smallstep/step-cli image as the one-shot `pki-step`.
#
#   step-issue.sh              a certificate for each node without a valid one
#   step-issue.sh renew NODE   rotation: a new key and certificate for NODE
#
# Each node gets, in /pki/<node>/ (its certs volume):
#   tls.crt  leaf + intermediate, URI SAN = the node's entity_uri (+ DNS names),
#            ECDSA P-256, 24 h (step-ca's default leaf template gives keyUsage
#            digitalSignature and extKeyUsage serverAuth + clientAuth)
#   tls.key  0640, owner $PKI_OWNER (the user fedproxy runs as)
#   ca.crt   the organisation's own root (tls.ca_bundle)
#   peer-cas/<peer>.crt   every other organisation's root: what the node names
#            as that peer's trust anchors (peers[].ca_bundle), refreshed every run
#
# Needs: STEP_PROVISIONER, PKI_OWNER; each CA's volume at /stepca/<org>
# (certs/root_ca.crt, secrets/password: with DOCKER_STEPCA_INIT_PASSWORD the
# provisioner password is the same as the CA key password), reachable at
# https://<org>-step-ca:9000.
set -euo pipefail

root_of() { echo "/stepca/$1/certs/root_ca.crt"; }
mode=all
only=
if [ $# -gt 0 ]; then
  if [ "$1" != renew ] || [ $# -ne 2 ]; then
    echo "usage: step-issue.sh [renew NODE]" >&2
    exit 2
  fi
  mode=renew
  only=$2
fi

nodes=(
  "acme-corp spiffe://acme.example/nodes/a"
  "partner-labs spiffe://partner-labs.example/nodes/primary"
)

issue() {
  local org=$1 uri=$2 out=/pki/$1 root
  root=$(root_of "$1")
  local tmp
  tmp=$(mktemp -d "$out/.new.XXXXXX")
  step ca certificate "$org" "$tmp/tls.crt" "$tmp/tls.key" \
    --san "$uri" --san "$org" --san localhost \
    --kty EC --curve P-256 --not-after 24h \
    --ca-url "https://$org-step-ca:9000" --root "$root" \
    --provisioner "$STEP_PROVISIONER" --provisioner-password-file "/stepca/$org/secrets/password" \
    --force
  cp "$root" "$tmp/ca.crt"
  chmod 0640 "$tmp/tls.key"
  chmod 0644 "$tmp/tls.crt" "$tmp/ca.crt"
  chown "$PKI_OWNER" "$tmp/tls.key" "$tmp/tls.crt" "$tmp/ca.crt" "$out"
  chmod 0755 "$out"
  # rename() into place, key first (fedproxy retries until they match).
  mv -f "$tmp/ca.crt" "$out/ca.crt"
  mv -f "$tmp/tls.key" "$out/tls.key"
  mv -f "$tmp/tls.crt" "$out/tls.crt"
  rm -rf "$tmp"
  echo "step-issue: $org: issued $out/tls.crt (URI SAN $uri)"
  step certificate inspect "$out/tls.crt" --short
}

# Kept when it chains to its organisation's root and is not about to expire.
current() {
  local out=/pki/$1 root
  root=$(root_of "$1")
  [ -s "$out/tls.crt" ] && [ -s "$out/tls.key" ] && [ -s "$out/ca.crt" ] || return 1
  cmp -s "$out/ca.crt" "$root" || return 1
  step certificate verify "$out/tls.crt" --roots "$root" >/dev/null 2>&1 || return 1
  # needs-renewal exits 1 when the certificate does NOT need renewal yet.
  local rc=0
  step certificate needs-renewal "$out/tls.crt" >/dev/null 2>&1 || rc=$?
  [ "$rc" -eq 1 ]
}

# The other organisations' roots, renamed into place.
peer_cas() {
  local org=$1 out=/pki/$1/peer-cas
  mkdir -p "$out"
  for n in "${nodes[@]}"; do
    local peer=${n%% *}
    [ "$peer" = "$org" ] && continue
    cp "$(root_of "$peer")" "$out/.$peer.crt.new"
    chmod 0644 "$out/.$peer.crt.new"
    chown "$PKI_OWNER" "$out/.$peer.crt.new" "$out"
    mv -f "$out/.$peer.crt.new" "$out/$peer.crt"
  done
  chmod 0755 "$out"
}

for n in "${nodes[@]}"; do
  org=${n%% *}
  uri=${n#* }
  if [ "$mode" = renew ]; then
    if [ "$org" = "$only" ]; then issue "$org" "$uri"; fi
  elif current "$org"; then
    echo "step-issue: $org: keeping the current certificate"
  else
    issue "$org" "$uri"
  fi
  [ "$mode" = renew ] || peer_cas "$org"
done

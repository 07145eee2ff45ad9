#!/usr/bin/env bash
# The demo PKI made with plain openssl, for when you do not want step-ca.
# Each organisation runs its own CA (ECDSA P-256): a CA trusted for one
# organisation must not be able to speak for another (SPEC §3). Each node gets
# an ECDSA P-256 key and a certificate from its organisation's CA with the
# node's entity URI as URI SAN, keyUsage digitalSignature and extendedKeyUsage
# serverAuth + clientAuth (a node certificate is used for ingress, as a
# server, and for egress, as a client).
#
#   make-pki.sh DIR              create DIR/ca/<org>/ (kept if it exists) and, for
#                                each node without a valid certificate, DIR/<node>/
#                                {tls.crt,tls.key,ca.crt} (the cert-manager names;
#                                ca.crt is the node's own CA); every run refreshes
#                                DIR/<node>/peer-cas/<peer>.crt, the other
#                                organisations' CAs (what each peer's ca_bundle names:
#                                in a real federation each organisation hands its CA
#                                certificate to the others)
#   make-pki.sh DIR renew NODE   rotation: a new key and certificate for NODE from
#                                the same CA, swapped in with rename() (the running
#                                fedproxy picks it up within tls.watch_interval_ms)
#
# Environment:
#   PKI_OWNER=UID:GID   chown each node's files to the user fedproxy runs as
#                       (compose sets 10001:10001; leave unset on your machine)
#   PKI_DAYS=N          node certificate lifetime in days (default 30)
#
# Key files are written 0640 (fedproxy refuses a world-readable key), the CA keys
# 0600 in DIR/ca/<org>/, which no fedproxy container mounts.
set -euo pipefail

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
dir=$1
shift
mode=all
only=
if [ $# -gt 0 ]; then
  [ "$1" = renew ] && [ $# -eq 2 ] || usage
  mode=renew
  only=$2
fi
days=${PKI_DAYS:-30}

# org entity_uri: the node identities of the demo (the manifests' entity_uri).
nodes=(
  "acme-corp spiffe://acme.example/nodes/a"
  "partner-labs spiffe://partner-labs.example/nodes/primary"
)

if [ "$mode" = renew ]; then
  known=0
  for n in "${nodes[@]}"; do [ "${n%% *}" = "$only" ] && known=1; done
  [ "$known" = 1 ] || { echo "make-pki: unknown node '$only' (known: acme-corp partner-labs)" >&2; exit 2; }
fi

umask 077

# make_ca ORG: DIR/ca/ORG/{ca.crt,ca.key}, kept when it exists.
make_ca() {
  local ca="$dir/ca/$1"
  mkdir -p "$ca"
  chmod 0755 "$dir/ca" "$ca"
  if [ ! -s "$ca/ca.crt" ] || [ ! -s "$ca/ca.key" ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
      -keyout "$ca/ca.key" -out "$ca/ca.crt" -days 365 \
      -subj "/O=$1/CN=$1 CA" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    chmod 0600 "$ca/ca.key"
    chmod 0644 "$ca/ca.crt"
    echo "make-pki: new CA $ca/ca.crt"
  fi
}
mkdir -p "$dir/ca"
for n in "${nodes[@]}"; do make_ca "${n%% *}"; done

# issue ORG URI: write DIR/ORG/{tls.key,tls.crt,ca.crt} from ORG's CA; every file is written
# to a temporary name first and renamed into place (key before certificate:
# fedproxy retries a reload whose key and certificate do not match yet).
issue() {
  local org=$1 uri=$2 out="$dir/$1" ca="$dir/ca/$1"
  mkdir -p "$out"
  chmod 0755 "$out"
  local tmp
  tmp=$(mktemp -d "$out/.new.XXXXXX")
  cat > "$tmp/ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=URI:$uri,DNS:$org,DNS:localhost,IP:127.0.0.1
EXT
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$tmp/tls.key" -out "$tmp/csr" -subj "/O=$org/CN=$org" 2>/dev/null
  openssl x509 -req -in "$tmp/csr" -CA "$ca/ca.crt" -CAkey "$ca/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days "$days" -extfile "$tmp/ext" \
    -out "$tmp/tls.crt" 2>/dev/null
  cp "$ca/ca.crt" "$tmp/ca.crt"
  chmod 0640 "$tmp/tls.key"
  chmod 0644 "$tmp/tls.crt" "$tmp/ca.crt"
  if [ -n "${PKI_OWNER:-}" ]; then
    chown "$PKI_OWNER" "$tmp/tls.key" "$tmp/tls.crt" "$tmp/ca.crt" "$out"
  fi
  mv -f "$tmp/ca.crt" "$out/ca.crt"
  mv -f "$tmp/tls.key" "$out/tls.key"
  mv -f "$tmp/tls.crt" "$out/tls.crt"
  rm -rf "$tmp"
  echo "make-pki: $org: $out/tls.crt (URI SAN $uri, expires $(openssl x509 -in "$out/tls.crt" -noout -enddate | cut -d= -f2))"
}

# A node's certificate is kept when it chains to its organisation's current CA,
# carries its URI SAN and stays valid for at least another day.
current() {
  local org=$1 uri=$2 out="$dir/$1" ca="$dir/ca/$1"
  [ -s "$out/tls.crt" ] && [ -s "$out/tls.key" ] && [ -s "$out/ca.crt" ] || return 1
  openssl verify -CAfile "$ca/ca.crt" "$out/tls.crt" >/dev/null 2>&1 || return 1
  openssl x509 -in "$out/tls.crt" -noout -checkend 86400 >/dev/null 2>&1 || return 1
  openssl x509 -in "$out/tls.crt" -noout -ext subjectAltName 2>/dev/null | grep -qF "URI:$uri" || return 1
  cmp -s "$out/ca.crt" "$ca/ca.crt"
}

# peer_cas ORG: DIR/ORG/peer-cas/<peer>.crt, the CA of every other organisation
# (renamed into place, so a running fedproxy never reads half a file).
peer_cas() {
  local org=$1 out="$dir/$1/peer-cas"
  mkdir -p "$out"
  chmod 0755 "$out"
  for n in "${nodes[@]}"; do
    local peer=${n%% *}
    [ "$peer" = "$org" ] && continue
    cp "$dir/ca/$peer/ca.crt" "$out/.$peer.crt.new"
    chmod 0644 "$out/.$peer.crt.new"
    if [ -n "${PKI_OWNER:-}" ]; then chown "$PKI_OWNER" "$out/.$peer.crt.new" "$out"; fi
    mv -f "$out/.$peer.crt.new" "$out/$peer.crt"
  done
}

for n in "${nodes[@]}"; do
  org=${n%% *}
  uri=${n#* }
  if [ "$mode" = renew ]; then
    if [ "$org" = "$only" ]; then issue "$org" "$uri"; fi
  elif current "$org" "$uri"; then
    echo "make-pki: $org: keeping the current certificate ($dir/$org/tls.crt)"
  else
    issue "$org" "$uri"
  fi
  [ "$mode" = renew ] || peer_cas "$org"
done

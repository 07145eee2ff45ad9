#!/usr/bin/env bash
# Demo PKI, made on the spot with openssl: one CA, the node certificate of
# acme-corp (server, URI SAN spiffe://acme.example/nodes/a) and a client
# certificate for the peer partner-labs (URI SAN + grant-id extension).
# Usage: make-pki.sh DIR
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
umask 077
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

openssl req -x509 $ec -keyout ca.key -out ca.crt -days 30 -subj "/O=Demo Federation/CN=Demo Federation CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

issue() {  # name subject extfile
  openssl req $ec -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -out "$1.crt" \
    -extfile "$3" 2>/dev/null
  rm -f "$1.csr"
}

cat > node.ext <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=URI:spiffe://acme.example/nodes/a,DNS:localhost,IP:127.0.0.1
EXT
issue node "/O=acme-corp/CN=acme-corp node a" node.ext

cat > peer.ext <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth,serverAuth
subjectAltName=URI:spiffe://partner-labs.example/nodes/primary
1.3.6.1.4.1.99999.1=ASN1:UTF8String:7d0c6a8e-3f7b-4e55-9a51-2b7f4c1d9e21
EXT
issue partner "/O=partner-labs/CN=partner-labs primary" peer.ext
rm -f node.ext peer.ext ca.srl
echo "demo PKI written to $dir"

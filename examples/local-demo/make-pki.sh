#!/usr/bin/env bash
# Demo PKI, made on the spot with openssl. Each organisation runs its own CA
# (SPEC §3 "Trust anchors per peer"): a CA trusted for one organisation must
# not be able to speak for another.
#   acme-ca.crt     acme-corp's CA    → node.crt (URI SAN spiffe://acme.example/nodes/a)
#   partner-ca.crt  partner-labs' CA  → partner.crt (URI SAN spiffe://partner-labs.example/nodes/primary
#                                        + grant-id extension)
#   other-ca.crt    other-org's CA    → other.crt (its own node) and impostor.crt: a certificate
#                                        with partner-labs' URI SAN, to show it is refused
#   beta-ca.crt     beta-org's CA     → beta.crt (URI SAN spiffe://beta.example/nodes/a): joins
#                                        acme-corp with a token, no file copied (SPEC §13)
# Usage: make-pki.sh DIR
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
umask 077
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

make_ca() {  # file-prefix subject
  openssl req -x509 $ec -keyout "$1.key" -out "$1.crt" -days 30 -subj "$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
make_ca acme-ca "/O=acme-corp/CN=acme-corp CA"
make_ca partner-ca "/O=partner-labs/CN=partner-labs CA"
make_ca other-ca "/O=other-org/CN=other-org CA"
make_ca beta-ca "/O=beta-org/CN=beta-org CA"

issue() {  # name ca subject extfile
  openssl req $ec -keyout "$1.key" -out "$1.csr" -subj "$3" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 7 -out "$1.crt" \
    -extfile "$4" 2>/dev/null
  rm -f "$1.csr"
}

cat > node.ext <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=URI:spiffe://acme.example/nodes/a,DNS:localhost,IP:127.0.0.1
EXT
issue node acme-ca "/O=acme-corp/CN=acme-corp node a" node.ext

cat > peer.ext <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth,serverAuth
subjectAltName=URI:spiffe://partner-labs.example/nodes/primary
1.3.6.1.4.1.99999.1=ASN1:UTF8String:7d0c6a8e-3f7b-4e55-9a51-2b7f4c1d9e21
EXT
issue partner partner-ca "/O=partner-labs/CN=partner-labs primary" peer.ext

cat > other.ext <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth,serverAuth
subjectAltName=URI:spiffe://other-org.example/nodes/a
EXT
issue other other-ca "/O=other-org/CN=other-org node a" other.ext
cat > beta.ext <<'EXT'
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth,serverAuth
subjectAltName=URI:spiffe://beta.example/nodes/a,DNS:localhost,IP:127.0.0.1
EXT
issue beta beta-ca "/O=beta-org/CN=beta-org node a" beta.ext
# other-org's CA signing partner-labs' name: what per-peer anchors refuse.
issue impostor other-ca "/O=other-org/CN=not partner-labs" peer.ext
rm -f node.ext peer.ext other.ext beta.ext ./*.srl
echo "demo PKI written to $dir"

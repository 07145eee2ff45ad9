// Parsing PEM/DER certificates into mbedTLS chains, with messages that name
// the certificate and the reason. Shared by the node's CertBundle and a
// peer's trust anchors.
#pragma once

#include <cstddef>
#include <string>

#include <mbedtls/x509_crt.h>

namespace fedproxy::certwatch {

// mbedTLS's text for an error code plus the code: "X509 - ... (-0x2180)".
std::string mbed_error(int ret);

bool looks_pem(const std::string& data);

// The unsupported EdDSA variant of a key or certificate DER, as a sentence
// for the operator; "" when der holds no EdDSA OID.
std::string eddsa_message(const unsigned char* der, size_t len);

// Parses every certificate of PEM text (several blocks) or of one DER
// certificate, appending to chain. `what` names them in messages
// ("CA certificate #2: cannot parse: ..."). *count: how many were parsed.
bool parse_certs(const std::string& data, mbedtls_x509_crt* chain, const char* what, int* count,
                 std::string& err);

}  // namespace fedproxy::certwatch

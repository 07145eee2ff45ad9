#include "proxy/app/node_anchors.hpp"

#include <mbedtls/pem.h>
#include <mbedtls/x509_crt.h>

#include "certwatch/digest.hpp"

namespace fedproxy::app {

namespace {
std::string to_pem(const unsigned char* der, size_t len) {
  std::string out(len * 2 + 128, '\0');
  size_t olen = 0;
  if (mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n", der, len,
                               reinterpret_cast<unsigned char*>(out.data()), out.size(), &olen) != 0) {
    return {};
  }
  out.resize(olen > 0 && out[olen - 1] == '\0' ? olen - 1 : olen);
  return out;
}
}  // namespace

std::vector<NodeAnchor> node_anchors(const certwatch::CertBundle& bundle) {
  std::vector<NodeAnchor> found;
  for (const mbedtls_x509_crt* ca = bundle.ca_chain(); ca && ca->raw.p; ca = ca->next) {
    mbedtls_x509_crt alone;
    mbedtls_x509_crt_init(&alone);
    uint32_t flags = 0;
    const bool chains = mbedtls_x509_crt_parse_der(&alone, ca->raw.p, ca->raw.len) == 0 &&
                        mbedtls_x509_crt_verify(bundle.cert_chain(), &alone, nullptr, nullptr, &flags, nullptr,
                                                nullptr) == 0;
    mbedtls_x509_crt_free(&alone);
    if (!chains) continue;
    std::string pem = to_pem(ca->raw.p, ca->raw.len);
    if (!pem.empty()) found.push_back({std::move(pem), certwatch::sha256_hex(ca->raw.p, ca->raw.len)});
  }
  return found;
}

std::string anchors_pem(const std::vector<NodeAnchor>& anchors) {
  std::string pem;
  for (const auto& a : anchors) pem += a.pem;
  return pem;
}

}  // namespace fedproxy::app

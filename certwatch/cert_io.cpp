// PEM/DER certificate parsing (see the header).
#include "certwatch/cert_io.hpp"

#include <cstdio>
#include <cstring>
#include <string_view>

#include <mbedtls/error.h>
#include <mbedtls/pem.h>

namespace fedproxy::certwatch {

std::string mbed_error(int ret) {
  char text[160];
  mbedtls_strerror(ret, text, sizeof text);
  char code[24];
  std::snprintf(code, sizeof code, " (-0x%04X)", static_cast<unsigned>(-ret));
  return std::string(text) + code;
}

bool looks_pem(const std::string& data) { return data.find("-----BEGIN ") != std::string::npos; }

namespace {

bool contains(const unsigned char* p, size_t n, std::string_view needle) {
  return std::string_view(reinterpret_cast<const char*>(p), n).find(needle) != std::string_view::npos;
}

// OIDs of the EdDSA algorithms (RFC 8410), as DER: 06 03 2B 65 70 / 71.
constexpr std::string_view kOidEd25519("\x06\x03\x2b\x65\x70", 5);
constexpr std::string_view kOidEd448("\x06\x03\x2b\x65\x71", 5);

}  // namespace

std::string eddsa_message(const unsigned char* der, size_t len) {
  const char* alg = contains(der, len, kOidEd25519) ? "Ed25519"
                    : contains(der, len, kOidEd448) ? "Ed448"
                                                    : nullptr;
  if (alg == nullptr) return {};
  return std::string(alg) +
         " keys are not supported by the TLS library (mbedTLS); use ECDSA P-256/P-384 or RSA >= 2048";
}

bool parse_certs(const std::string& data, mbedtls_x509_crt* chain, const char* what, int* count,
                 std::string& err) {
  *count = 0;
  if (!looks_pem(data) && static_cast<unsigned char>(data[0]) != 0x30) {  // neither PEM nor a DER SEQUENCE
    err = std::string("no ") + what + " found (expected PEM \"BEGIN CERTIFICATE\" blocks or DER)";
    return false;
  }
  if (!looks_pem(data)) {
    const auto* der = reinterpret_cast<const unsigned char*>(data.data());
    int ret = mbedtls_x509_crt_parse_der(chain, der, data.size());
    if (ret != 0) {
      std::string ed = eddsa_message(der, data.size());
      err = !ed.empty() ? ed : std::string("cannot parse ") + what + ": " + mbed_error(ret);
      return false;
    }
    *count = 1;
    return true;
  }
  static const char kBegin[] = "-----BEGIN CERTIFICATE-----";
  static const char kEnd[] = "-----END CERTIFICATE-----";
  size_t pos = 0;
  for (;;) {
    pos = data.find(kBegin, pos);
    if (pos == std::string::npos) break;
    const int index = *count + 1;
    mbedtls_pem_context pem;
    mbedtls_pem_init(&pem);
    size_t use_len = 0;
    int ret = mbedtls_pem_read_buffer(&pem, kBegin, kEnd,
                                      reinterpret_cast<const unsigned char*>(data.c_str() + pos),
                                      nullptr, 0, &use_len);
    if (ret != 0) {
      mbedtls_pem_free(&pem);
      err = std::string("cannot parse ") + what + " #" + std::to_string(index) + ": bad PEM: " + mbed_error(ret);
      return false;
    }
    size_t der_len = 0;
    const unsigned char* der = mbedtls_pem_get_buffer(&pem, &der_len);
    ret = mbedtls_x509_crt_parse_der(chain, der, der_len);
    if (ret != 0) {
      std::string ed = eddsa_message(der, der_len);
      mbedtls_pem_free(&pem);
      err = std::string(what) + " #" + std::to_string(index) + ": " +
            (!ed.empty() ? ed : "cannot parse: " + mbed_error(ret));
      return false;
    }
    mbedtls_pem_free(&pem);
    ++*count;
    pos += use_len > 0 ? use_len : 1;
  }
  if (*count == 0) {
    err = std::string("no ") + what + " found (expected PEM \"BEGIN CERTIFICATE\" blocks)";
    return false;
  }
  return true;
}

}  // namespace fedproxy::certwatch

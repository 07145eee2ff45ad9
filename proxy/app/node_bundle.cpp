// The node's trust bundle document (see the header).
#include "proxy/app/node_bundle.hpp"

#include "certwatch/bundle_keys.hpp"
#include "config/json.hpp"

namespace fedproxy::app {

base::Result<std::string> spiffe_bundle_json(const std::vector<certwatch::TrustAnchor>& anchors,
                                             uint32_t refresh_hint_s) {
  using config::json::quote;
  std::string j = "{\"keys\":[";
  bool first = true;
  for (const certwatch::TrustAnchor& a : anchors) {
    auto key = certwatch::bundle_key_of(a);
    if (!key) return key.error();
    j += first ? "{" : ",{";
    first = false;
    j += "\"use\":\"x509-svid\",\"kty\":" + quote(key->kty);
    if (key->kty == "EC") {
      j += ",\"crv\":" + quote(key->crv) + ",\"x\":" + quote(key->x) + ",\"y\":" + quote(key->y);
    } else {
      j += ",\"n\":" + quote(key->n) + ",\"e\":" + quote(key->e);
    }
    j += ",\"x5c\":[" + quote(key->x5c) + "]}";
  }
  j += "],\"spiffe_refresh_hint\":" + std::to_string(refresh_hint_s) + "}\n";
  return j;
}

}  // namespace fedproxy::app

// parse_peer / to_json (config/peer.hpp): the rules of SPEC §3 and §11
// "peers[i]" for one peer object, worded as the config file words them.

#include "config/peer.hpp"

#include <utility>

#include "config/json.hpp"
#include "config/reader.hpp"
#include "config/validate.hpp"

namespace fedproxy::config {

using detail::peer_url_error;
using detail::quote;
using detail::trust_domain_error;
using json::index_path;
using picojson::array;
using picojson::object;
using picojson::value;

namespace {

const std::vector<std::string_view> kPeerKeys = {
    "org", "trust_level", "cert_fingerprint", "expires_at", "allowed_regions",
    "allowed_artifact_types", "entity_uri", "endpoints", "ca_bundle", "trust_domain", "refresh_bundle"};
const std::vector<std::string_view> kTrustLevels = {"none", "verified", "full"};

// Peer expiry: the RFC 3339 rule of validate.hpp, but config files take only
// the upper-case "T" and "Z" (the only letters a valid timestamp can hold).
bool is_rfc3339(std::string_view s) {
  return detail::parse_rfc3339_ms(s).has_value() && s.find_first_of("tz") == std::string_view::npos;
}

// Config files put no length cap on entity URIs (manifests do).
std::optional<std::string> uri_error(std::string_view s) { return detail::uri_error(s, std::string_view::npos); }

class PeerReader : public Reader {
 public:
  using Reader::Reader;

  void read(const object& o, const std::string& where, PeerConfig& p) {
    check_keys(o, where, kPeerKeys);
    if (auto* f = member(o, "org")) {
      std::string org;
      if (read_string(*f, where + ".org", org)) {
        if (auto e = detail::slug_error(org)) add(where + ".org", *e);
        else p.org = org;
      }
    } else {
      add(where + ".org", "required");
    }
    if (auto* f = member(o, "trust_level")) read_enum(*f, where + ".trust_level", kTrustLevels, p.trust_level);
    if (auto* f = member(o, "cert_fingerprint"); f && !f->is<picojson::null>()) {
      std::string fp;
      if (read_string(*f, where + ".cert_fingerprint", fp)) {
        if (detail::is_sha256_hex(fp)) {
          p.cert_fingerprint = fp;
        } else {
          std::string msg = "must be 64 lowercase hex digits (SHA-256 of the certificate "
                            "DER, as printed by `openssl dgst -sha256`)";
          if (fp.find(':') != std::string::npos) msg += "; remove the ':' separators";
          else if (fp.size() == 64) msg += "; use lowercase";
          add(where + ".cert_fingerprint", msg);
        }
      }
    }
    if (auto* f = member(o, "expires_at"); f && !f->is<picojson::null>()) {
      std::string ts;
      if (read_string(*f, where + ".expires_at", ts)) {
        if (is_rfc3339(ts)) {
          p.expires_at = ts;
        } else {
          add(where + ".expires_at", "must be an RFC 3339 timestamp such as "
                                     "\"2027-04-13T00:00:00Z\" (got " + quote(ts) + ")");
        }
      }
    }
    for (auto [key, field] : {std::pair{"allowed_regions", &p.allowed_regions},
                              std::pair{"allowed_artifact_types", &p.allowed_artifact_types}}) {
      if (auto* f = member(o, key); f && !f->is<picojson::null>()) *field = read_string_list(*f, where + "." + key);
    }
    if (auto* f = member(o, "entity_uri"); f && !f->is<picojson::null>()) {
      std::string uri;
      if (read_string(*f, where + ".entity_uri", uri)) {
        if (auto e = uri_error(uri)) add(where + ".entity_uri", *e);
        else p.entity_uri = uri;
      }
    }
    if (auto* f = member(o, "endpoints"); f && !f->is<picojson::null>()) {
      p.endpoints = read_string_list(*f, where + ".endpoints");
      if (p.endpoints) {
        for (size_t j = 0; j < p.endpoints->size(); ++j) {
          if (auto e = peer_url_error((*p.endpoints)[j])) add(index_path(where + ".endpoints", j), *e);
        }
      }
    }
    if (auto* f = member(o, "ca_bundle")) read_path(*f, where + ".ca_bundle", p.ca_bundle, true);
    if (auto* f = member(o, "refresh_bundle")) {
      read_bool(*f, where + ".refresh_bundle", p.refresh_bundle);
      if (p.refresh_bundle && p.ca_bundle.empty()) {
        add(where + ".refresh_bundle",
            "needs ca_bundle: the file in which fedproxy keeps the peer's trust bundle, fetched from its "
            "/.well-known/fedproxy-bundle.json (it must hold the peer's current CA to start with)");
      }
    }
    if (auto* f = member(o, "trust_domain"); f && !f->is<picojson::null>()) {
      std::string td;
      if (read_string(*f, where + ".trust_domain", td)) {
        if (auto e = trust_domain_error(td)) add(where + ".trust_domain", *e);
        else p.trust_domain = td;
      }
    }
  }
};

value string_array(const std::vector<std::string>& items) {
  array a;
  for (const auto& s : items) a.emplace_back(s);
  return value(a);
}

}  // namespace

const std::vector<std::string_view>& peer_keys() { return kPeerKeys; }

PeerParse parse_peer(const value& v, std::string where, const std::string& base_dir) {
  PeerParse out;
  PeerReader r(base_dir);
  if (v.is<object>()) {
    r.read(v.get<object>(), where, out.peer);
  } else {
    r.problems.push_back({where, std::string("must be an object, got ") + detail::type_name(v)});
  }
  out.problems = std::move(r.problems);
  return out;
}

value to_json(const PeerConfig& p) {
  object o;
  o["org"] = value(p.org);
  o["trust_level"] = value(p.trust_level);
  if (p.cert_fingerprint) o["cert_fingerprint"] = value(*p.cert_fingerprint);
  if (p.expires_at) o["expires_at"] = value(*p.expires_at);
  if (p.allowed_regions) o["allowed_regions"] = string_array(*p.allowed_regions);
  if (p.allowed_artifact_types) o["allowed_artifact_types"] = string_array(*p.allowed_artifact_types);
  if (p.entity_uri) o["entity_uri"] = value(*p.entity_uri);
  if (p.endpoints) o["endpoints"] = string_array(*p.endpoints);
  if (!p.ca_bundle.empty()) o["ca_bundle"] = value(p.ca_bundle);
  if (p.trust_domain) o["trust_domain"] = value(*p.trust_domain);
  if (p.refresh_bundle) o["refresh_bundle"] = value(true);
  return value(o);
}

}  // namespace fedproxy::config

// Peer manifests (SPEC §3): JSON documents describing a peer organisation.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace fedproxy::config {

// A manifest's "trust_bundle" (SPEC §3): the peer's own CA certificates,
// either as PEM text or as a SPIFFE bundle (a JWKS whose keys with
// "use": "x509-svid" carry one CA certificate each in "x5c"). Only the JSON
// shape is checked here; the certificates are parsed by the certificate layer.
struct TrustBundle {
  std::string pem;  // PEM form ("" in SPIFFE form)
  struct X509Authority {
    std::string where;   // "trust_bundle.keys[0].x5c[0]", for messages
    std::string base64;  // the CA certificate, base64 DER
  };
  std::vector<X509Authority> x509_authorities;  // SPIFFE form
};

struct Manifest {
  std::string org;         // slug
  std::string entity_uri;  // the peer's URI SAN
  std::vector<std::string> endpoints;  // https://host:port
  std::optional<std::string> tls_cert_fingerprint;  // 64 lowercase hex
  std::optional<std::string> trust_domain;          // of a spiffe:// entity_uri
  std::optional<TrustBundle> trust_bundle;
  std::string source;      // file it came from, for messages
};

struct ManifestResult {
  std::optional<Manifest> manifest;
  std::vector<ConfigProblem> problems;  // where = "<file>: <json path>"
};

// Parse and validate one manifest (slug rules, reserved slugs, URI, endpoints,
// fingerprint format). Unknown keys are allowed (manifests are published by
// other organisations and may grow), but required ones must be there.
ManifestResult parse_manifest(const std::string& json_text, const std::string& source);

struct ManifestDirResult {
  std::vector<Manifest> manifests;
  std::vector<ConfigProblem> problems;
};

// Every *.json file in dir (non-recursive, sorted by name). Duplicate orgs are
// a problem. A missing dir is one problem. "" → empty result, no problem.
ManifestDirResult load_manifest_dir(const std::string& dir);

// A peer's trust bundle as its node serves it (GET
// /.well-known/fedproxy-bundle.json, SPIFFE format): the X.509 authorities
// and the refresh hint (0 = none given). The same rules as a manifest's
// trust_bundle object; nullopt after adding the problems.
struct SpiffeBundle {
  TrustBundle bundle;
  int64_t refresh_hint_s = 0;
};
std::optional<SpiffeBundle> parse_spiffe_bundle(const std::string& json_text, std::vector<ConfigProblem>* problems);

// Serialise (for `fedproxy manifest fetch` and the node's own manifest).
std::string manifest_to_json(const Manifest& m);

}  // namespace fedproxy::config

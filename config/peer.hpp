// A peer (SPEC §3, §11 "peers[i]") as a typed value: parse_peer reads ONE
// peer object (a config file's peers[i], or one posted to the management
// API) and reports every field problem; to_json writes it back
// (parse_peer of to_json(p) gives p again). What needs the whole
// configuration (not this node's own org, no duplicate org; agreement with
// the org's manifest) is the config file's and policy's.
#pragma once

#include <picojson.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/problem.hpp"

namespace fedproxy::config {

struct PeerConfig {
  std::string org;
  std::string trust_level = "verified";              // none | verified | full
  std::optional<std::string> cert_fingerprint;       // 64 lowercase hex
  std::optional<std::string> expires_at;             // RFC 3339
  std::optional<std::vector<std::string>> allowed_regions;
  std::optional<std::vector<std::string>> allowed_artifact_types;
  std::optional<std::string> entity_uri;             // inline alternative to a manifest file
  std::optional<std::vector<std::string>> endpoints; // inline alternative to a manifest file
  // The peer's own trust anchors (SPEC §3): a PEM file of the CA(s) that
  // issue its certificates, absolute; "" = none (its manifest's trust_bundle,
  // if any, else tls.ca_bundle).
  std::string ca_bundle;
  // Keep ca_bundle current from the peer's /.well-known/fedproxy-bundle.json
  // (fetched over mTLS, so authenticated by the anchors it replaces) on the
  // bundle's refresh hint: fedproxy rewrites the ca_bundle file.
  bool refresh_bundle = false;
  // The trust domain of its spiffe:// entity_uri (checked when compiled).
  std::optional<std::string> trust_domain;
  bool operator==(const PeerConfig&) const = default;
};

struct PeerParse {
  PeerConfig peer;  // every valid field; the others keep their defaults
  std::vector<ConfigProblem> problems;  // where = "<where>.<field>"; empty: valid
};

// base_dir resolves a relative ca_bundle.
PeerParse parse_peer(const picojson::value& v, std::string where, const std::string& base_dir);

// The fields of a peer object, in the order parse_peer checks them.
const std::vector<std::string_view>& peer_keys();

// The fields that are set (ca_bundle when not "").
picojson::value to_json(const PeerConfig& p);

}  // namespace fedproxy::config

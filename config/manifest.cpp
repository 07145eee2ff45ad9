// Peer manifests (SPEC §3). A manifest can come from another organisation
// over the network (`fedproxy manifest fetch`), so parsing is defensive:
// bounded size and nesting, duplicate keys refused (two parsers must not
// read two different entity_uris out of one document), no exception leaves.
// Unknown keys are allowed: manifests are published by others and may grow.

#include "config/manifest.hpp"

#include <picojson.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <system_error>

#include "config/json.hpp"
#include "config/validate.hpp"

namespace fedproxy::config {

namespace fs = std::filesystem;
using detail::quote;
using picojson::array;
using picojson::object;
using picojson::value;

namespace {

constexpr size_t kMaxManifestBytes = 1u << 20;
constexpr size_t kMaxDepth = 32;

// Empty on success, else the reason: the first problem of the strict reader
// (config/json.hpp), with its location.
std::string parse_strict(const std::string& text, value* out) {
  std::vector<json::Problem> problems;
  json::ReadOptions options;
  options.max_depth = kMaxDepth;
  if (json::read_strict(text, out, &problems, options) || problems.empty()) return {};
  const json::Problem& p = problems.front();
  std::string message = p.message.starts_with("invalid JSON: ") ? p.message.substr(14) : p.message;
  return p.where == "(root)" ? message : message + " (at " + p.where + ")";
}

std::string location(const std::string& source, const std::string& path) {
  if (source.empty()) return path;
  return source + ": " + path;
}

using AddProblem = std::function<void(const std::string&, std::string)>;

// "trust_bundle": PEM text, or a SPIFFE bundle {"keys": [{"use": "x509-svid",
// "x5c": ["<base64 DER>"]}, ...], "spiffe_refresh_hint": ...}. Keys for
// other uses (jwt-svid) are skipped; a bundle without an X.509 authority is
// refused, since an empty anchor set would silently mean "tls.ca_bundle".
std::optional<TrustBundle> parse_trust_bundle(const value& v, const AddProblem& add) {
  TrustBundle tb;
  if (v.is<std::string>()) {
    tb.pem = v.get<std::string>();
    if (tb.pem.find("-----BEGIN CERTIFICATE-----") == std::string::npos) {
      add("trust_bundle", "must hold PEM \"BEGIN CERTIFICATE\" blocks (or be a SPIFFE bundle object)");
      return std::nullopt;
    }
    return tb;
  }
  if (!v.is<object>()) {
    add("trust_bundle", "must be a PEM string or a SPIFFE bundle object {\"keys\": [...]}");
    return std::nullopt;
  }
  const object& o = v.get<object>();
  auto keys = o.find("keys");
  if (keys == o.end() || !keys->second.is<array>()) {
    add("trust_bundle.keys", "required: the SPIFFE bundle's array of keys");
    return std::nullopt;
  }
  bool ok = true;
  const array& a = keys->second.get<array>();
  for (size_t i = 0; i < a.size(); ++i) {
    const std::string where = "trust_bundle.keys[" + std::to_string(i) + "]";
    if (!a[i].is<object>()) {
      add(where, "must be an object (a JWK)");
      ok = false;
      continue;
    }
    const object& key = a[i].get<object>();
    auto use = key.find("use");
    if (use == key.end() || !use->second.is<std::string>() || use->second.get<std::string>() != "x509-svid") {
      continue;  // a JWT-SVID key, or a use this node does not know: not an X.509 authority
    }
    auto x5c = key.find("x5c");
    if (x5c == key.end() || !x5c->second.is<array>() || x5c->second.get<array>().size() != 1 ||
        !x5c->second.get<array>()[0].is<std::string>() || x5c->second.get<array>()[0].get<std::string>().empty()) {
      add(where + ".x5c", "an x509-svid key must carry exactly one certificate: [\"<base64 DER>\"]");
      ok = false;
      continue;
    }
    tb.x509_authorities.push_back({where + ".x5c[0]", x5c->second.get<array>()[0].get<std::string>()});
  }
  if (ok && tb.x509_authorities.empty()) {
    add("trust_bundle.keys", "has no key with \"use\": \"x509-svid\" (the bundle's X.509 authorities)");
    return std::nullopt;
  }
  if (!ok) return std::nullopt;
  return tb;
}

}  // namespace

ManifestResult parse_manifest(const std::string& json_text, const std::string& source) {
  ManifestResult r;
  auto add = [&](const std::string& path, std::string msg) {
    r.problems.push_back({location(source, path), std::move(msg)});
  };
  try {
    if (json_text.size() > kMaxManifestBytes) {
      add("(root)", "manifest is larger than " + std::to_string(kMaxManifestBytes >> 20) + " MiB");
      return r;
    }
    value root;
    if (std::string err = parse_strict(json_text, &root); !err.empty()) {
      add("(root)", "invalid JSON: " + err);
      return r;
    }
    if (!root.is<object>()) {
      add("(root)", "a manifest must be a JSON object");
      return r;
    }
    const object& o = root.get<object>();
    Manifest m;
    m.source = source;
    auto str = [&](const char* key, bool required, std::string* out) -> bool {
      auto it = o.find(key);
      if (it == o.end() || (!required && it->second.is<picojson::null>())) {
        if (required) add(key, "required");
        return false;
      }
      if (!it->second.is<std::string>()) {
        add(key, "must be a string");
        return false;
      }
      *out = it->second.get<std::string>();
      if (out->find('\0') != std::string::npos) {
        add(key, "must not contain NUL characters");
        return false;
      }
      return true;
    };
    if (str("org", true, &m.org)) {
      if (auto e = detail::slug_error(m.org)) add("org", *e);
    }
    if (str("entity_uri", true, &m.entity_uri)) {
      if (auto e = detail::uri_error(m.entity_uri)) add("entity_uri", *e);
    }
    if (auto it = o.find("endpoints"); it == o.end()) {
      add("endpoints", "required (an array of https:// origins, possibly empty)");
    } else if (!it->second.is<array>()) {
      add("endpoints", "must be an array of https:// origins");
    } else {
      const array& a = it->second.get<array>();
      for (size_t i = 0; i < a.size(); ++i) {
        std::string where = "endpoints[" + std::to_string(i) + "]";
        if (!a[i].is<std::string>()) {
          add(where, "must be a string");
          continue;
        }
        const std::string& url = a[i].get<std::string>();
        if (auto e = detail::peer_url_error(url)) {
          add(where, *e);
          continue;
        }
        m.endpoints.push_back(url);
      }
    }
    std::string fp;
    if (str("tls_cert_fingerprint", false, &fp)) {
      if (detail::is_sha256_hex(fp)) {
        m.tls_cert_fingerprint = fp;
      } else {
        add("tls_cert_fingerprint", "must be 64 lowercase hex digits (SHA-256 of the certificate DER)");
      }
    }
    std::string td;
    if (str("trust_domain", false, &td)) {
      if (auto e = detail::trust_domain_error(td)) {
        add("trust_domain", *e);
      } else {
        m.trust_domain = td;
      }
    }
    if (auto it = o.find("trust_bundle"); it != o.end() && !it->second.is<picojson::null>()) {
      m.trust_bundle = parse_trust_bundle(it->second, add);
    }
    if (r.problems.empty()) r.manifest = std::move(m);
  } catch (const std::exception& e) {
    r.manifest.reset();
    add("(root)", std::string("manifest could not be read: ") + e.what());
  }
  return r;
}

ManifestDirResult load_manifest_dir(const std::string& dir) {
  ManifestDirResult result;
  if (dir.empty()) return result;
  try {
    std::error_code ec;
    auto st = fs::status(dir, ec);
    if (ec || !fs::exists(st)) {
      result.problems.push_back({dir, "manifest directory does not exist or cannot be read" +
                                          (ec ? ": " + ec.message() : std::string())});
      return result;
    }
    if (!fs::is_directory(st)) {
      result.problems.push_back({dir, "is not a directory (manifests_dir must name a directory)"});
      return result;
    }
    std::vector<fs::path> files;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const fs::path& p = it->path();
      std::string name = p.filename().string();
      // Dot files: editor leftovers and Kubernetes' ..data / ..2024_* entries.
      if (name.empty() || name[0] == '.' || p.extension() != ".json") continue;
      std::error_code fec;
      if (!fs::is_regular_file(fs::status(p, fec)) || fec) continue;  // follows symlinks
      files.push_back(p);
    }
    if (ec) {
      result.problems.push_back({dir, "cannot list: " + ec.message()});
      return result;
    }
    std::sort(files.begin(), files.end(),
              [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
    std::map<std::string, std::string> org_file;
    for (const fs::path& p : files) {
      const std::string path = p.string();
      std::FILE* f = std::fopen(path.c_str(), "rb");
      if (!f) {
        result.problems.push_back({path, std::string("cannot read: ") + std::strerror(errno)});
        continue;
      }
      std::string text;
      char buf[16384];
      size_t n;
      bool too_big = false;
      while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        text.append(buf, n);
        if (text.size() > kMaxManifestBytes) {
          too_big = true;
          break;
        }
      }
      bool read_error = std::ferror(f) != 0;
      std::fclose(f);
      if (read_error) {
        result.problems.push_back({path, "cannot read"});
        continue;
      }
      if (too_big) {
        result.problems.push_back({path, "manifest is larger than 1 MiB"});
        continue;
      }
      ManifestResult r = parse_manifest(text, path);
      result.problems.insert(result.problems.end(), r.problems.begin(), r.problems.end());
      if (!r.manifest) continue;
      if (auto [it, fresh] = org_file.emplace(r.manifest->org, path); !fresh) {
        result.problems.push_back({location(path, "org"), "org " + quote(r.manifest->org) +
                                                               " is also described by " +
                                                               it->second});
        continue;
      }
      result.manifests.push_back(std::move(*r.manifest));
    }
  } catch (const std::exception& e) {
    result.problems.push_back({dir, std::string("cannot load manifests: ") + e.what()});
  }
  return result;
}

std::optional<SpiffeBundle> parse_spiffe_bundle(const std::string& json_text, std::vector<ConfigProblem>* problems) {
  value root;
  std::vector<json::Problem> read;
  if (!json::read_strict(json_text, &root, &read)) {
    for (const auto& p : read) problems->push_back({p.where, p.message});
    return std::nullopt;
  }
  AddProblem add = [&](const std::string& where, std::string message) {
    problems->push_back({where, std::move(message)});
  };
  if (!root.is<object>()) {
    add("(root)", "a trust bundle is a JSON object {\"keys\": [...]}");
    return std::nullopt;
  }
  auto tb = parse_trust_bundle(root, add);
  if (!tb) return std::nullopt;
  SpiffeBundle out;
  out.bundle = std::move(*tb);
  const object& o = root.get<object>();
  if (auto hint = o.find("spiffe_refresh_hint"); hint != o.end() && hint->second.is<double>()) {
    const double h = hint->second.get<double>();
    if (h >= 0 && h < 1e9) out.refresh_hint_s = static_cast<int64_t>(h);
  }
  return out;
}

std::string manifest_to_json(const Manifest& m) {
  object o;
  o["org"] = value(m.org);
  o["entity_uri"] = value(m.entity_uri);
  array eps;
  for (const auto& e : m.endpoints) eps.emplace_back(e);
  o["endpoints"] = value(eps);
  if (m.tls_cert_fingerprint) o["tls_cert_fingerprint"] = value(*m.tls_cert_fingerprint);
  if (m.trust_domain) o["trust_domain"] = value(*m.trust_domain);
  if (m.trust_bundle && !m.trust_bundle->pem.empty()) {
    o["trust_bundle"] = value(m.trust_bundle->pem);
  } else if (m.trust_bundle) {
    array keys;
    for (const auto& authority : m.trust_bundle->x509_authorities) {
      object key;
      key["use"] = value("x509-svid");
      key["x5c"] = value(array{value(authority.base64)});
      keys.emplace_back(key);
    }
    object bundle;
    bundle["keys"] = value(keys);
    o["trust_bundle"] = value(bundle);
  }
  return detail::ascii_json(value(o));
}

}  // namespace fedproxy::config

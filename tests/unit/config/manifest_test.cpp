// Peer manifests (SPEC §3): parsing and validation, the manifest directory,
// serialisation round trip.

#include "config/manifest.hpp"

#include <doctest/doctest.h>
#include <picojson.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

using namespace fedproxy::config;
namespace fs = std::filesystem;

namespace {

const char* kGood = R"({"org": "partner-labs",
  "entity_uri": "spiffe://partner-labs.example/nodes/primary",
  "endpoints": ["https://partner-labs.example:8443", "https://[2001:db8::1]:8443"],
  "tls_cert_fingerprint": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
  "future_field": {"anything": [1, 2, 3]}})";

bool has_problem(const std::vector<ConfigProblem>& ps, const std::string& where,
                 const std::string& fragment = "") {
  for (const auto& p : ps) {
    if (p.where == where && p.message.find(fragment) != std::string::npos) return true;
  }
  return false;
}

std::string dump(const std::vector<ConfigProblem>& ps) {
  std::string out;
  for (const auto& p : ps) out += "  " + p.to_string() + "\n";
  return out;
}

struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "fedproxy-manifests-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name) << text;
  }
};

}  // namespace

TEST_CASE("parse_manifest: a valid manifest, unknown keys allowed") {
  ManifestResult r = parse_manifest(kGood, "peers/partner-labs.json");
  INFO(dump(r.problems));
  REQUIRE(r.manifest.has_value());
  CHECK(r.manifest->org == "partner-labs");
  CHECK(r.manifest->entity_uri == "spiffe://partner-labs.example/nodes/primary");
  CHECK(r.manifest->endpoints.size() == 2);
  CHECK(r.manifest->tls_cert_fingerprint ==
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  CHECK(r.manifest->source == "peers/partner-labs.json");

  ManifestResult minimal = parse_manifest(
      R"({"org": "a", "entity_uri": "spiffe://a.example/n", "endpoints": [], "tls_cert_fingerprint": null})",
      "m.json");
  INFO(dump(minimal.problems));
  REQUIRE(minimal.manifest.has_value());
  CHECK_FALSE(minimal.manifest->tls_cert_fingerprint.has_value());
}

TEST_CASE("parse_manifest: every rule, located as <file>: <json path>") {
  struct Bad {
    const char* json;
    const char* where;
    const char* fragment;
  };
  const Bad cases[] = {
      {"", "f.json: (root)", "invalid JSON"},
      {"{", "f.json: (root)", "invalid JSON"},
      {"[]", "f.json: (root)", "must be a JSON object"},
      {R"({"org": "a", "org": "b", "entity_uri": "x:y", "endpoints": []})", "f.json: (root)",
       "duplicate key \"org\""},
      {R"({"org": "a", "entity_uri": "x:y", "endpoints": []} trailing)", "f.json: (root)",
       "after the end"},
      {R"({"entity_uri": "x:y", "endpoints": []})", "f.json: org", "required"},
      {R"({"org": 5, "entity_uri": "x:y", "endpoints": []})", "f.json: org", "must be a string"},
      {R"({"org": "Partner", "entity_uri": "x:y", "endpoints": []})", "f.json: org", "invalid slug"},
      {R"({"org": "ab", "entity_uri": "x:y", "endpoints": []})", "f.json: org", "invalid slug"},
      {R"({"org": "a--b", "entity_uri": "x:y", "endpoints": []})", "f.json: org", "\"--\""},
      {R"({"org": "root", "entity_uri": "x:y", "endpoints": []})", "f.json: org", "reserved"},
      {R"({"org": "a", "endpoints": []})", "f.json: entity_uri", "required"},
      {R"({"org": "a", "entity_uri": "no-scheme", "endpoints": []})", "f.json: entity_uri",
       "absolute URI"},
      {R"({"org": "a", "entity_uri": "spiffe://a b", "endpoints": []})", "f.json: entity_uri",
       "whitespace"},
      {R"({"org": "a", "entity_uri": "x:y"})", "f.json: endpoints", "required"},
      {R"({"org": "a", "entity_uri": "x:y", "endpoints": "https://a"})", "f.json: endpoints",
       "must be an array"},
      {R"({"org": "a", "entity_uri": "x:y", "endpoints": [1]})", "f.json: endpoints[0]",
       "must be a string"},
      {R"({"org": "a", "entity_uri": "x:y", "endpoints": ["ftp://a"]})", "f.json: endpoints[0]",
       "https://"},
      {R"({"org": "a", "entity_uri": "x:y", "endpoints": ["https://a/path"]})",
       "f.json: endpoints[0]", "bare origin"},
      {R"({"org": "a", "entity_uri": "x:y", "endpoints": ["https://a:0"]})", "f.json: endpoints[0]",
       "invalid port"},
      {R"({"org": "a", "entity_uri": "x:y", "endpoints": [], "tls_cert_fingerprint": "ABCD"})",
       "f.json: tls_cert_fingerprint", "64 lowercase hex"},
      {R"({"org": "a", "entity_uri": "x:y", "endpoints": [], "tls_cert_fingerprint": 5})",
       "f.json: tls_cert_fingerprint", "must be a string"},
      {R"({"org": "a", "entity_uri": "x:y", "endpoints": [], "n": 1e999})", "f.json: (root)",
       "out of range"},
  };
  for (const Bad& b : cases) {
    INFO("json: " << std::string(b.json));
    ManifestResult r = parse_manifest(b.json, "f.json");
    INFO(dump(r.problems));
    CHECK_FALSE(r.manifest.has_value());
    CHECK(has_problem(r.problems, b.where, b.fragment));
  }
  // Nesting is bounded (a manifest can come from the network).
  std::string deep = R"({"org": "a", "entity_uri": "x:y", "endpoints": [], "n": )" +
                     std::string(10000, '[') + std::string(10000, ']') + "}";
  ManifestResult r = parse_manifest(deep, "f.json");
  CHECK(has_problem(r.problems, "f.json: (root)", "nested too deeply"));
  // Every problem, not just the first.
  ManifestResult many = parse_manifest(R"({"org": "X", "entity_uri": "nope", "endpoints": ["x"]})", "f.json");
  CHECK(many.problems.size() == 3);
}

TEST_CASE("manifest_to_json round-trips") {
  Manifest m;
  m.org = "acme-corp";
  m.entity_uri = "spiffe://acme.example/nodes/a";
  m.endpoints = {"https://acme.example:8443"};
  m.tls_cert_fingerprint = std::string(64, 'e');
  std::string json = manifest_to_json(m);
  CHECK(json.find("\"org\":\"acme-corp\"") != std::string::npos);
  ManifestResult back = parse_manifest(json, "self");
  INFO(dump(back.problems));
  REQUIRE(back.manifest.has_value());
  CHECK(back.manifest->org == m.org);
  CHECK(back.manifest->entity_uri == m.entity_uri);
  CHECK(back.manifest->endpoints == m.endpoints);
  CHECK(back.manifest->tls_cert_fingerprint == m.tls_cert_fingerprint);

  Manifest bare;
  bare.org = "acme-corp";
  bare.entity_uri = "spiffe://acme.example/nodes/a";
  std::string bare_json = manifest_to_json(bare);
  CHECK(bare_json.find("tls_cert_fingerprint") == std::string::npos);
  CHECK(parse_manifest(bare_json, "self").manifest.has_value());
}

TEST_CASE("parse_manifest: a non-ASCII entity_uri is refused (found by fuzz_config)") {
  // Before: accepted, then written back by manifest_to_json as U+FFFD.
  ManifestResult r = parse_manifest(
      "{\"org\":\"partner-labs\",\"entity_uri\":\"spiffe://partner-labs.example/n\xf5\",\"endpoints\":[]}",
      "peer.json");
  INFO(dump(r.problems));
  CHECK_FALSE(r.manifest.has_value());
  CHECK(has_problem(r.problems, "peer.json: entity_uri", "ASCII"));
}

TEST_CASE("load_manifest_dir: *.json, sorted, dot files skipped, duplicates refused") {
  TempDir dir;
  dir.write("b.json", R"({"org": "bravo", "entity_uri": "spiffe://b/n", "endpoints": []})");
  dir.write("a.json", R"({"org": "alpha", "entity_uri": "spiffe://a/n", "endpoints": []})");
  dir.write("c.json", R"({"org": "alpha", "entity_uri": "spiffe://c/n", "endpoints": []})");
  dir.write("d.json", R"({"org": "BAD", "entity_uri": "spiffe://d/n", "endpoints": []})");
  dir.write("notes.txt", "not a manifest");
  dir.write(".hidden.json", "{");
  fs::create_directory(dir.path / "sub.json");  // a directory, not a file
  fs::create_symlink(dir.path / "b.json", dir.path / "link.json.bak");

  ManifestDirResult r = load_manifest_dir(dir.path.string());
  INFO(dump(r.problems));
  REQUIRE(r.manifests.size() == 2);
  CHECK(r.manifests[0].org == "alpha");
  CHECK(r.manifests[0].source == (dir.path / "a.json").string());
  CHECK(r.manifests[1].org == "bravo");
  CHECK(has_problem(r.problems, (dir.path / "c.json").string() + ": org",
                    "also described by " + (dir.path / "a.json").string()));
  CHECK(has_problem(r.problems, (dir.path / "d.json").string() + ": org", "invalid slug"));
  CHECK(r.problems.size() == 2);
}

TEST_CASE("load_manifest_dir: Kubernetes ..data symlinks are followed") {
  TempDir dir;
  fs::create_directory(dir.path / "..2024_01_01");
  std::ofstream(dir.path / "..2024_01_01" / "p.json")
      << R"({"org": "partner-labs", "entity_uri": "spiffe://p/n", "endpoints": []})";
  fs::create_directory_symlink("..2024_01_01", dir.path / "..data");
  fs::create_symlink("..data/p.json", dir.path / "p.json");
  ManifestDirResult r = load_manifest_dir(dir.path.string());
  INFO(dump(r.problems));
  REQUIRE(r.manifests.size() == 1);
  CHECK(r.manifests[0].org == "partner-labs");
}

TEST_CASE("load_manifest_dir: empty, missing, not a directory") {
  ManifestDirResult none = load_manifest_dir("");
  CHECK(none.manifests.empty());
  CHECK(none.problems.empty());

  ManifestDirResult missing = load_manifest_dir("/nonexistent/fedproxy/peers");
  REQUIRE(missing.problems.size() == 1);
  CHECK(missing.problems[0].where == "/nonexistent/fedproxy/peers");

  TempDir dir;
  dir.write("file", "x");
  ManifestDirResult file = load_manifest_dir((dir.path / "file").string());
  REQUIRE(file.problems.size() == 1);
  CHECK(file.problems[0].message.find("not a directory") != std::string::npos);

  TempDir empty;
  ManifestDirResult e = load_manifest_dir(empty.path.string());
  CHECK(e.manifests.empty());
  CHECK(e.problems.empty());
}

namespace {

const std::string kManifestHead =
    R"({"org": "partner-labs", "entity_uri": "spiffe://partner-labs.example/nodes/primary", "endpoints": [])";
const std::string kPem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

ManifestResult with_bundle(const std::string& members) {
  return parse_manifest(kManifestHead + ", " + members + "}", "peers/partner-labs.json");
}

}  // namespace

TEST_CASE("trust_bundle: PEM text is kept for the certificate layer") {
  ManifestResult r = with_bundle(R"("trust_domain": "partner-labs.example", "trust_bundle": )" +
                                 picojson::value(kPem).serialize());
  INFO(dump(r.problems));
  REQUIRE(r.manifest.has_value());
  REQUIRE(r.manifest->trust_bundle.has_value());
  CHECK(r.manifest->trust_bundle->pem == kPem);
  CHECK(r.manifest->trust_bundle->x509_authorities.empty());
  CHECK(r.manifest->trust_domain == std::optional<std::string>("partner-labs.example"));
  // Absent or null: no bundle, the peer has no anchors from its manifest.
  CHECK_FALSE(with_bundle(R"("trust_bundle": null)").manifest->trust_bundle.has_value());
}

TEST_CASE("trust_bundle: a SPIFFE bundle's x509-svid keys, other uses skipped") {
  ManifestResult r = with_bundle(R"("trust_bundle": {"spiffe_refresh_hint": 300, "keys": [
      {"use": "jwt-svid", "kty": "EC", "kid": "j1"},
      {"use": "x509-svid", "kty": "EC", "x5c": ["MIIBzzCCAXWgAwIBAgIU"]},
      {"use": "x509-svid", "kty": "RSA", "x5c": ["MIIDdzCCAl+gAwIBAgIE"]}]})");
  INFO(dump(r.problems));
  REQUIRE(r.manifest.has_value());
  const TrustBundle& tb = *r.manifest->trust_bundle;
  CHECK(tb.pem.empty());
  REQUIRE(tb.x509_authorities.size() == 2);
  CHECK(tb.x509_authorities[0].where == "trust_bundle.keys[1].x5c[0]");
  CHECK(tb.x509_authorities[0].base64 == "MIIBzzCCAXWgAwIBAgIU");
  CHECK(tb.x509_authorities[1].where == "trust_bundle.keys[2].x5c[0]");
}

TEST_CASE("trust_bundle and trust_domain: every malformed shape is a located problem") {
  struct Bad {
    std::string members, where, fragment;
  } cases[] = {
      {R"("trust_bundle": 7)", "trust_bundle", "PEM string or a SPIFFE bundle"},
      {R"("trust_bundle": "no certificates here")", "trust_bundle", "BEGIN CERTIFICATE"},
      {R"("trust_bundle": {"spiffe_refresh_hint": 1})", "trust_bundle.keys", "required"},
      {R"("trust_bundle": {"keys": {}})", "trust_bundle.keys", "required"},
      {R"("trust_bundle": {"keys": []})", "trust_bundle.keys", "x509-svid"},
      {R"("trust_bundle": {"keys": [{"use": "jwt-svid"}]})", "trust_bundle.keys", "x509-svid"},
      {R"("trust_bundle": {"keys": ["x"]})", "trust_bundle.keys[0]", "object"},
      {R"("trust_bundle": {"keys": [{"use": "x509-svid"}]})", "trust_bundle.keys[0].x5c", "exactly one"},
      {R"("trust_bundle": {"keys": [{"use": "x509-svid", "x5c": ["a", "b"]}]})", "trust_bundle.keys[0].x5c",
       "exactly one"},
      {R"("trust_bundle": {"keys": [{"use": "x509-svid", "x5c": [""]}]})", "trust_bundle.keys[0].x5c",
       "exactly one"},
      {R"("trust_domain": "Partner.Example")", "trust_domain", "SPIFFE trust domain"},
      {R"("trust_domain": 5)", "trust_domain", "string"},
  };
  for (const Bad& b : cases) {
    CAPTURE(b.members);
    ManifestResult r = with_bundle(b.members);
    INFO(dump(r.problems));
    CHECK_FALSE(r.manifest.has_value());
    CHECK(has_problem(r.problems, "peers/partner-labs.json: " + b.where, b.fragment));
  }
}

TEST_CASE("manifest_to_json keeps trust_domain and both trust_bundle forms") {
  for (bool spiffe : {false, true}) {
    CAPTURE(spiffe);
    Manifest m;
    m.org = "partner-labs";
    m.entity_uri = "spiffe://partner-labs.example/nodes/primary";
    m.trust_domain = "partner-labs.example";
    TrustBundle tb;
    if (spiffe) {
      tb.x509_authorities = {{"", "MIIBzzCC"}, {"", "MIIDdzCC"}};
    } else {
      tb.pem = kPem;
    }
    m.trust_bundle = tb;
    ManifestResult back = parse_manifest(manifest_to_json(m), "self");
    INFO(dump(back.problems));
    REQUIRE(back.manifest.has_value());
    CHECK(back.manifest->trust_domain == m.trust_domain);
    REQUIRE(back.manifest->trust_bundle.has_value());
    CHECK(back.manifest->trust_bundle->pem == tb.pem);
    REQUIRE(back.manifest->trust_bundle->x509_authorities.size() == tb.x509_authorities.size());
    for (size_t i = 0; i < tb.x509_authorities.size(); ++i) {
      CHECK(back.manifest->trust_bundle->x509_authorities[i].base64 == tb.x509_authorities[i].base64);
    }
  }
}

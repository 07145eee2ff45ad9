// The management API's state: overlay on a config document, ETag
// stability, the state file's atomic write, and refusal of a corrupt file.
#include "config/etag.hpp"
#include "config/state.hpp"
#include "config/state_file.hpp"

#include <doctest/doctest.h>
#include <picojson.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace cfg = fedproxy::config;

namespace {
picojson::value parse(const std::string& text) {
  picojson::value v;
  const std::string error = picojson::parse(v, text);
  REQUIRE_MESSAGE(error.empty(), text);
  return v;
}

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/fedproxy-config-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}
}  // namespace

TEST_CASE("overlay: a state object replaces the one with its key, others are appended") {
  picojson::value root = parse(R"({"node":{"org":"a"},
      "peers":[{"org":"p1","trust_level":"verified"},{"org":"p2"}],
      "grants":[{"id":"g1","peer":"p1","status":"active"}]})");
  cfg::State state;
  state.put(cfg::Kind::peer, parse(R"({"org":"p2","trust_level":"none"})"));
  state.put(cfg::Kind::peer, parse(R"({"org":"p3"})"));
  state.put(cfg::Kind::grant, parse(R"({"id":"g1","peer":"p1","status":"revoked"})"));
  cfg::overlay(root.get<picojson::object>(), state);
  CHECK(root.get("peers").serialize() ==
        parse(R"([{"org":"p1","trust_level":"verified"},{"org":"p2","trust_level":"none"},{"org":"p3"}])").serialize());
  CHECK(root.get("grants").serialize() == parse(R"([{"id":"g1","peer":"p1","status":"revoked"}])").serialize());
  const cfg::Found found = cfg::find_object(root.get<picojson::object>(), cfg::Kind::peer, "p3");
  REQUIRE(found.object != nullptr);
  CHECK(found.index == 2);
  CHECK(cfg::find_object(root.get<picojson::object>(), cfg::Kind::grant, "nope").object == nullptr);
}

TEST_CASE("overlay: a config without grants gets the array; put replaces in place") {
  picojson::value root = parse(R"({"node":{"org":"a"}})");
  cfg::State state;
  state.put(cfg::Kind::grant, parse(R"({"id":"g1","status":"active"})"));
  state.put(cfg::Kind::grant, parse(R"({"id":"g1","status":"revoked"})"));
  CHECK(state.grants.size() == 1);
  cfg::overlay(root.get<picojson::object>(), state);
  CHECK(root.get("grants").serialize() == R"([{"id":"g1","status":"revoked"}])");
  CHECK_FALSE(root.contains("peers"));
}

TEST_CASE("etag: member order does not matter, content does; quoted SHA-256 hex") {
  const auto a = parse(R"({"id":"g1","resources":["tasks"],"status":"active"})");
  const auto b = parse(R"({"status":"active","resources":["tasks"],"id":"g1"})");
  const auto c = parse(R"({"status":"revoked","resources":["tasks"],"id":"g1"})");
  CHECK(cfg::etag(a) == cfg::etag(b));
  CHECK(cfg::etag(a) != cfg::etag(c));
  const std::string tag = cfg::etag(a);
  CHECK(tag.size() == 66);
  CHECK(tag.front() == '"');
  CHECK(tag.back() == '"');
  CHECK(tag.substr(1, 64) == cfg::object_digest(a));
  CHECK(tag.find_first_not_of("0123456789abcdef\"") == std::string::npos);
  // SHA-256 of {} (its canonical JSON, two bytes).
  CHECK(cfg::object_digest(parse("{}")) == "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
}

TEST_CASE("state file: write then read gives the same state; no temp file is left") {
  TempDir dir;
  const std::string path = dir.path + "/state.json";
  cfg::State state;
  state.put(cfg::Kind::peer, parse(R"({"org":"p1","trust_level":"none"})"));
  state.put(cfg::Kind::grant, parse(R"({"id":"g1","status":"revoked"})"));
  REQUIRE(cfg::write_state_file(path, state).ok());
  auto read = cfg::read_state_file(path);
  REQUIRE(read.ok());
  CHECK(cfg::to_json(*read) == cfg::to_json(state));
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path)) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 1);
  // A second write replaces the first.
  state.put(cfg::Kind::grant, parse(R"({"id":"g2","status":"active"})"));
  REQUIRE(cfg::write_state_file(path, state).ok());
  auto again = cfg::read_state_file(path);
  REQUIRE(again.ok());
  CHECK(again->grants.size() == 2);
}

TEST_CASE("state file: missing is empty; corrupt ones are refused naming the file") {
  TempDir dir;
  const std::string path = dir.path + "/state.json";
  auto missing = cfg::read_state_file(path);
  REQUIRE(missing.ok());
  CHECK(missing->peers.empty());
  CHECK(missing->grants.empty());
  const char* bad[] = {
      R"({"version":1,"peers":[{"org":"p1"}],"grants":[{"id":"g1"})",  // cut short
      "",
      "[]",
      R"({"version":2,"peers":[],"grants":[]})",
      R"({"peers":[],"grants":[]})",
      R"({"version":1,"peers":[{"trust_level":"none"}],"grants":[]})",
      R"({"version":1,"peers":[],"grants":[{"id":"g1"},{"id":"g1"}]})",
      R"({"version":1,"peers":{},"grants":[]})",
      R"({"version":1,"extra":[]})",
  };
  for (const char* text : bad) {
    CAPTURE(text);
    write_file(path, text);
    auto read = cfg::read_state_file(path);
    REQUIRE_FALSE(read.ok());
    CHECK(read.error().file == path);
  }
}

TEST_CASE("state file: a directory that cannot be written is an error, the old file stays") {
  TempDir dir;
  const std::string path = dir.path + "/state.json";
  cfg::State state;
  state.put(cfg::Kind::grant, parse(R"({"id":"g1"})"));
  REQUIRE(cfg::write_state_file(path, state).ok());
  CHECK_FALSE(cfg::write_state_file(dir.path + "/missing-dir/state.json", state).ok());
  CHECK(cfg::read_state_file(path).ok());
}

TEST_CASE("state: invites and joins round-trip; a file without them (older format) still reads") {
  auto old = cfg::state_from_json(R"({"version":1,"peers":[],"grants":[]})");
  REQUIRE(old);
  CHECK(old->invites.empty());
  CHECK(old->joins.empty());
  cfg::State s;
  s.invites.push_back(parse(R"({"id":"0123456789abcdef","org":"b","secret_sha256":"00","expires_at":5})"));
  s.joins.push_back(parse(R"({"org":"b","joined_at":7})"));
  auto back = cfg::state_from_json(cfg::to_json(s));
  REQUIRE(back);
  REQUIRE(back->invites.size() == 1);
  CHECK(back->invites[0].get("org").get<std::string>() == "b");
  REQUIRE(back->joins.size() == 1);
  CHECK_FALSE(cfg::state_from_json(R"({"version":1,"invites":[{"org":"b"}]})"));
  CHECK_FALSE(cfg::state_from_json(R"({"version":1,"joins":{}})"));
}

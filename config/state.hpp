// The management API's state (SPEC §12 `state.path`): the peers and grants
// changed at run time, as objects of the config file's shape, and how they
// overlay the config file. Pure: no I/O here (state_file.hpp reads and
// writes it).
#pragma once

#include <string>
#include <string_view>

#include <picojson.h>

#include "proxy/base/result.hpp"

namespace fedproxy::config {

enum class Kind { peer, grant };

const char* to_string(Kind kind);            // "peer", "grant"
const char* array_name(Kind kind);           // "peers", "grants"
const char* key_name(Kind kind);             // "org", "id"

// The key of an object of that kind ("" when the object has none).
std::string key_of(Kind kind, const picojson::value& object);

struct State {
  picojson::array peers;   // objects, each with a string "org"
  picojson::array grants;  // objects, each with a string "id"
  // Join invites (SPEC §13), each {"id", "org", "secret_sha256", "expires_at"
  // (unix s), "grant" (optional), "used_at" (unix s, once used)}: never the
  // secret itself.
  picojson::array invites;
  // Peers this node joined or that joined it (SPEC §13), each {"org",
  // "joined_at"}: shown `pending` until their first successful heartbeat.
  picojson::array joins;

  picojson::array& items(Kind kind) { return kind == Kind::peer ? peers : grants; }
  const picojson::array& items(Kind kind) const { return kind == Kind::peer ? peers : grants; }
  // Adds the object or replaces the one with its key.
  void put(Kind kind, picojson::value object);
};

// {"version":1,"peers":[...],"grants":[...],"invites":[...],"joins":[...]}
// (invites and joins are optional when read: older files lack them).
std::string to_json(const State& state);
// Refuses anything but that shape: unknown version or keys, non-objects,
// objects without their key, a key twice.
base::Result<State> state_from_json(std::string_view text);

// Puts the state's objects into a config document (its root object): an
// object replaces the config's object with the same key, others are
// appended. A config array that is missing is created; one that is not an
// array is left alone (the config parser reports it).
void overlay(picojson::object& config_root, const State& state);

// The object of that kind and key in a (overlaid) config document, and its
// index in the array.
struct Found {
  const picojson::value* object = nullptr;
  size_t index = 0;
};
Found find_object(const picojson::object& config_root, Kind kind, std::string_view key);

}  // namespace fedproxy::config

#include "config/state.hpp"

#include <set>
#include <string>
#include <utility>

namespace fedproxy::config {

namespace {
constexpr int64_t kStateVersion = 1;

base::Error invalid(std::string message) { return base::make_error(base::Errc::invalid, std::move(message)); }
}  // namespace

const char* to_string(Kind kind) { return kind == Kind::peer ? "peer" : "grant"; }
const char* array_name(Kind kind) { return kind == Kind::peer ? "peers" : "grants"; }
const char* key_name(Kind kind) { return kind == Kind::peer ? "org" : "id"; }

std::string key_of(Kind kind, const picojson::value& object) {
  if (!object.is<picojson::object>()) return "";
  const auto& o = object.get<picojson::object>();
  auto it = o.find(key_name(kind));
  return it != o.end() && it->second.is<std::string>() ? it->second.get<std::string>() : "";
}

void State::put(Kind kind, picojson::value object) {
  picojson::array& list = items(kind);
  const std::string key = key_of(kind, object);
  for (auto& existing : list) {
    if (key_of(kind, existing) == key) {
      existing = std::move(object);
      return;
    }
  }
  list.push_back(std::move(object));
}

std::string to_json(const State& state) {
  picojson::object root;
  root["version"] = picojson::value(kStateVersion);
  root["peers"] = picojson::value(state.peers);
  root["grants"] = picojson::value(state.grants);
  if (!state.invites.empty()) root["invites"] = picojson::value(state.invites);
  if (!state.joins.empty()) root["joins"] = picojson::value(state.joins);
  return picojson::value(std::move(root)).serialize(true);
}

base::Result<State> state_from_json(std::string_view text) {
  picojson::value root;
  std::string error;
  picojson::parse(root, text.begin(), text.end(), &error);
  if (!error.empty()) return invalid("not JSON: " + error);
  if (!root.is<picojson::object>()) return invalid("must be a JSON object");
  State state;
  for (const auto& [name, value] : root.get<picojson::object>()) {
    if (name == "version") {
      if (!value.is<int64_t>() || value.get<int64_t>() != kStateVersion) return invalid("version must be 1");
      continue;
    }
    if (name == "invites" || name == "joins") {
      const char* key = name == "invites" ? "id" : "org";
      if (!value.is<picojson::array>()) return invalid(name + " must be an array");
      for (const auto& item : value.get<picojson::array>()) {
        if (!item.is<picojson::object>() || !item.contains(key) || !item.get(key).is<std::string>()) {
          return invalid(name + ": every entry must be an object with a string \"" + key + "\"");
        }
      }
      (name == "invites" ? state.invites : state.joins) = value.get<picojson::array>();
      continue;
    }
    Kind kind;
    if (name == "peers") {
      kind = Kind::peer;
    } else if (name == "grants") {
      kind = Kind::grant;
    } else {
      return invalid("unknown key \"" + name + "\"");
    }
    if (!value.is<picojson::array>()) return invalid(name + " must be an array");
    std::set<std::string> seen;
    for (const auto& item : value.get<picojson::array>()) {
      const std::string key = key_of(kind, item);
      if (key.empty()) return invalid(name + ": every entry must be an object with a string \"" + key_name(kind) + "\"");
      if (!seen.insert(key).second) return invalid(name + ": \"" + key + "\" appears twice");
    }
    state.items(kind) = value.get<picojson::array>();
  }
  if (root.get<picojson::object>().count("version") == 0) return invalid("version is missing");
  return state;
}

void overlay(picojson::object& config_root, const State& state) {
  for (Kind kind : {Kind::peer, Kind::grant}) {
    const picojson::array& changed = state.items(kind);
    if (changed.empty()) continue;
    picojson::value& slot = config_root[array_name(kind)];
    if (slot.is<picojson::null>()) slot = picojson::value(picojson::array{});
    if (!slot.is<picojson::array>()) continue;
    picojson::array& list = slot.get<picojson::array>();
    for (const auto& object : changed) {
      const std::string key = key_of(kind, object);
      bool replaced = false;
      for (auto& existing : list) {
        if (!key.empty() && key_of(kind, existing) == key) {
          existing = object;
          replaced = true;
          break;
        }
      }
      if (!replaced) list.push_back(object);
    }
  }
}

Found find_object(const picojson::object& config_root, Kind kind, std::string_view key) {
  auto it = config_root.find(array_name(kind));
  if (it == config_root.end() || !it->second.is<picojson::array>()) return {};
  const picojson::array& list = it->second.get<picojson::array>();
  for (size_t i = 0; i < list.size(); ++i) {
    if (key_of(kind, list[i]) == key) return {&list[i], i};
  }
  return {};
}

}  // namespace fedproxy::config

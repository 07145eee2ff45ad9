#include "proxy/app/effective_config.hpp"

#include <fstream>
#include <sstream>
#include <utility>

#include "config/state_file.hpp"

namespace fedproxy::app {

EffectiveConfig load_effective_config(const std::string& config_path, const config::EnvOverrides& env,
                                      const config::State* state_override) {
  EffectiveConfig out;
  // The file alone first: its syntax and key problems are located in it, and
  // it names state.path.
  out.result = config::load_config_file(config_path, env);
  if (!out.result.config) return out;
  const config::Config& plain = *out.result.config;
  out.state_path = plain.state_path;

  std::ifstream in(plain.path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  picojson::value root;
  if (!picojson::parse(root, text.str()).empty() || !root.is<picojson::object>()) return out;  // changed under us
  out.root = std::move(root.get<picojson::object>());
  out.has_root = true;

  if (state_override) {
    out.state = *state_override;
  } else if (!out.state_path.empty()) {
    auto read = config::read_state_file(out.state_path);
    if (!read) {
      config::ConfigResult bad;
      bad.problems.push_back({"state.path", base::to_string(read.error())});
      out.result = std::move(bad);
      return out;
    }
    out.state = std::move(read).value();
  }
  if (out.state.peers.empty() && out.state.grants.empty()) return out;

  config::overlay(out.root, out.state);
  config::ConfigResult merged =
      config::parse_config(picojson::value(out.root).serialize(), plain.dir, env);
  if (merged.config) merged.config->path = plain.path;
  out.result = std::move(merged);
  return out;
}

}  // namespace fedproxy::app

// What `run`, `check` and reloads load: the config file with the state file
// of the management API (SPEC §12 `state.path`) overlaid on it, parsed and
// validated as one document, so a problem the API caused is located like
// any other ("grants[3].resources").
#pragma once

#include <string>

#include <picojson.h>

#include "config/state.hpp"
#include "config/config.hpp"

namespace fedproxy::app {

struct EffectiveConfig {
  config::ConfigResult result;
  // The overlaid document (config file + state), when the file was JSON.
  picojson::object root;
  bool has_root = false;
  config::State state;       // what was overlaid
  std::string state_path;    // absolute, "" = state.path not configured
};

// state_override: use this state instead of reading state.path (the
// management API's candidate: the state with one change applied).
EffectiveConfig load_effective_config(const std::string& config_path, const config::EnvOverrides& env,
                                      const config::State* state_override = nullptr);

}  // namespace fedproxy::app

// One problem found while reading input, with its JSON location
// ("tls.cert", "grants[2].resources") and a human sentence. Shared by the
// config file, grants, peers and manifests so that all word alike.
#pragma once

#include <string>

namespace fedproxy::config {

struct ConfigProblem {
  std::string where;
  std::string message;
  std::string to_string() const;  // "<where>: <message>"
  bool operator==(const ConfigProblem&) const = default;
};

inline std::string ConfigProblem::to_string() const {
  if (where.empty()) return message;
  return where + ": " + message;
}

}  // namespace fedproxy::config

// The one argument parser of every subcommand: each command declares its
// options and how many positional words it takes; anything else (an unknown
// flag such as a mistyped `--confg`, a missing value, an extra word) is a
// usage error, exit 2 with the command's usage on stderr. A typo must never
// be ignored silently: `run --confg x` would otherwise fall back to
// $FEDPROXY_CONFIG or a default and run something the operator did not ask for.
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fedproxy::app {

struct OptionSpec {
  std::string_view name;         // "--config"
  bool takes_value = false;      // "--config FILE" / "--config=FILE"
  std::string_view alias = {};   // "-c"
};

struct CommandSpec {
  std::string_view name;   // "run", "cert inspect": for messages
  std::string_view usage;  // the --help text; its first line is the usage line
  std::vector<OptionSpec> options;
  size_t min_positional = 0;
  size_t max_positional = 0;
};

class ParsedArgs {
 public:
  bool has(std::string_view option) const { return values_.count(std::string(option)) != 0; }
  // The option's value, or nullopt when it was not given.
  std::optional<std::string> value(std::string_view option) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  friend std::optional<int> parse_args(const CommandSpec&, const std::vector<std::string>&, ParsedArgs*);
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

// Parses args against spec. Returns the exit code when the command must stop
// here: 0 after printing the usage to stdout for --help/-h, kExitUsage after
// printing "fedproxy NAME: WHAT" and the usage line to stderr. nullopt: go on.
// "--" ends the options (a FILE named "-x" stays possible).
std::optional<int> parse_args(const CommandSpec& spec, const std::vector<std::string>& args, ParsedArgs* out);

// Prints "fedproxy NAME: WHAT" and the usage line on stderr; returns kExitUsage.
int usage_error(const CommandSpec& spec, std::string_view what);

// --config FILE, else $FEDPROXY_CONFIG; "" with *error set when neither.
std::string config_path(const ParsedArgs& args, std::string* error);

}  // namespace fedproxy::app

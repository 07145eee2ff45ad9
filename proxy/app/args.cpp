#include "proxy/app/args.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>

#include "proxy/app/commands.hpp"

namespace fedproxy::app {

std::optional<std::string> ParsedArgs::value(std::string_view option) const {
  auto it = values_.find(std::string(option));
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

int usage_error(const CommandSpec& spec, std::string_view what) {
  // The usage line, not the whole help: the mistake stays on screen.
  std::string_view line = spec.usage.substr(0, spec.usage.find('\n'));
  std::fprintf(stderr, "fedproxy %.*s: %.*s\n%.*s\nRun 'fedproxy %.*s --help' for more.\n",
               static_cast<int>(spec.name.size()), spec.name.data(), static_cast<int>(what.size()), what.data(),
               static_cast<int>(line.size()), line.data(), static_cast<int>(spec.name.size()), spec.name.data());
  return kExitUsage;
}

namespace {
const OptionSpec* find_option(const CommandSpec& spec, std::string_view word) {
  for (const OptionSpec& o : spec.options) {
    if (word == o.name || (!o.alias.empty() && word == o.alias)) return &o;
  }
  return nullptr;
}
}  // namespace

std::optional<int> parse_args(const CommandSpec& spec, const std::vector<std::string>& args, ParsedArgs* out) {
  // --help wins wherever it stands (before a value it would be that value,
  // but "--config --help" is a request for help, not a file named --help).
  for (const std::string& a : args) {
    if (a == "--") break;
    if (a == "--help" || a == "-h") {
      std::fwrite(spec.usage.data(), 1, spec.usage.size(), stdout);
      if (!spec.usage.empty() && spec.usage.back() != '\n') std::fputc('\n', stdout);
      return 0;
    }
  }
  bool options_done = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      out->positional_.push_back(a);  // "-" alone is a positional (stdin)
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    std::string_view word = a;
    std::optional<std::string> inline_value;
    if (auto eq = word.find('='); eq != std::string_view::npos && word.rfind("--", 0) == 0) {
      inline_value = std::string(word.substr(eq + 1));
      word = word.substr(0, eq);
    }
    const OptionSpec* o = find_option(spec, word);
    if (!o) return usage_error(spec, "unknown option '" + std::string(word) + "'");
    std::string key(o->name);
    if (out->values_.count(key)) return usage_error(spec, key + " given twice");
    if (!o->takes_value) {
      if (inline_value) return usage_error(spec, key + " takes no value");
      out->values_[key] = "";
      continue;
    }
    if (inline_value) {
      out->values_[key] = *inline_value;
    } else if (i + 1 < args.size()) {
      out->values_[key] = args[++i];
    } else {
      return usage_error(spec, key + " needs a value");
    }
    if (out->values_[key].empty()) return usage_error(spec, key + " needs a non-empty value");
  }
  const size_t n = out->positional_.size();
  if (n > spec.max_positional) {
    return usage_error(spec, "unexpected argument '" + out->positional_[spec.max_positional] + "'");
  }
  if (n < spec.min_positional) return usage_error(spec, "missing argument (see the usage below)");
  return std::nullopt;
}

std::string config_path(const ParsedArgs& args, std::string* error) {
  if (auto v = args.value("--config")) return *v;
  const char* env = std::getenv("FEDPROXY_CONFIG");
  if (env && *env) return env;
  *error = "no config: pass --config FILE or set FEDPROXY_CONFIG";
  return "";
}

}  // namespace fedproxy::app

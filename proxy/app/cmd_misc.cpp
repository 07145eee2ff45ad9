// Argument helpers, `fedproxy version` and `fedproxy check`.
#include <cstdio>
#include <cstdlib>

#include <llhttp.h>
#include <mbedtls/version.h>
#include <uv.h>

#include "proxy/app/commands.hpp"
#include "proxy/app/snapshot.hpp"

#ifndef FEDPROXY_VERSION
#define FEDPROXY_VERSION "unknown"
#endif

namespace fedproxy::app {

std::string config_path_from_args(const std::vector<std::string>& args, std::string* error) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--config" || args[i] == "-c") {
      if (i + 1 >= args.size()) {
        *error = "--config needs a file";
        return "";
      }
      return args[i + 1];
    }
    if (args[i].rfind("--config=", 0) == 0) return args[i].substr(9);
  }
  const char* env = std::getenv("FEDPROXY_CONFIG");
  if (env && *env) return env;
  *error = "no config: pass --config FILE or set FEDPROXY_CONFIG";
  return "";
}

bool wants_help(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") return true;
  }
  return false;
}

int cmd_version(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::puts("Usage: fedproxy version\nPrints fedproxy's version and the versions of the libraries it runs with.");
    return 0;
  }
  char mbed[32];
  mbedtls_version_get_string(mbed);
  std::printf("fedproxy %s (mbedTLS %s, libuv %s, llhttp %d.%d.%d)\n", FEDPROXY_VERSION, mbed,
              uv_version_string(), LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH);
  return 0;
}

int cmd_check(const std::vector<std::string>& args) {
  if (wants_help(args)) {
    std::puts(
        "Usage: fedproxy check --config FILE\n"
        "Validates everything `run` would load (config, certificates, key, CA bundle, CRL)\n"
        "and prints every problem found. Exit 0 when all is well, 1 otherwise.");
    return 0;
  }
  std::string error;
  std::string path = config_path_from_args(args, &error);
  if (path.empty()) {
    std::fprintf(stderr, "fedproxy check: %s\n", error.c_str());
    return kExitProblems;
  }
  auto loaded = policy::load_config_file(path, policy::EnvOverrides::from_environment());
  int problems = 0;
  for (const auto& p : loaded.problems) {
    std::printf("%s: %s\n", path.c_str(), p.to_string().c_str());
    ++problems;
  }
  if (loaded.config) {
    const policy::Config& cfg = *loaded.config;
    if (!cfg.tls.cert.empty()) {
      auto snap = build_tls_snapshot(cfg);
      if (!snap.error.empty()) {
        std::printf("%s: %s\n", snap.file.c_str(), snap.error.c_str());
        ++problems;
      }
    } else if (!env_flag("FEDPROXY_INSECURE")) {
      std::printf("%s: tls: no tls.cert/tls.key configured; run refuses to start unless FEDPROXY_INSECURE=1\n",
                  path.c_str());
      ++problems;
    }
  }
  if (problems) {
    std::printf("%d problem%s found\n", problems, problems == 1 ? "" : "s");
    return kExitProblems;
  }
  std::printf("%s: OK\n", path.c_str());
  return 0;
}

}  // namespace fedproxy::app

// The subcommands of the fedproxy binary (SPEC §10).
#pragma once

#include <string>
#include <vector>

namespace fedproxy::app {

int cmd_run(const std::vector<std::string>& args);
int cmd_check(const std::vector<std::string>& args);
int cmd_version(const std::vector<std::string>& args);
int cmd_manifest(const std::vector<std::string>& args);
int cmd_audit(const std::vector<std::string>& args);
int cmd_cert(const std::vector<std::string>& args);

// Exit codes: 0 ok, 1 check found problems / usage error, 2 fatal at start
// (and `cert inspect` on a file it cannot read or that holds no certificate).
constexpr int kExitProblems = 1;
constexpr int kExitFatal = 2;

// "--config FILE" (or "--config=FILE"), else $FEDPROXY_CONFIG. "" if absent.
std::string config_path_from_args(const std::vector<std::string>& args, std::string* error);
bool wants_help(const std::vector<std::string>& args);

}  // namespace fedproxy::app

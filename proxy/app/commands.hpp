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
int cmd_reload(const std::vector<std::string>& args);
int cmd_policy(const std::vector<std::string>& args);  // policy explain
int cmd_peers(const std::vector<std::string>& args);   // peers list|add|set|revoke (SPEC §12)
int cmd_peer(const std::vector<std::string>& args);    // peer invite|join (SPEC §13)
int cmd_grants(const std::vector<std::string>& args);  // grants list|add|set|revoke

// Exit codes: 0 ok, 1 check found problems (a refusal, a failed reload),
// 2 usage error (unknown option, missing or extra argument) and fatal at
// start (and `cert inspect` on a file it cannot read or that holds no
// certificate). Each command's --help states its own.
constexpr int kExitProblems = 1;
constexpr int kExitFatal = 2;
constexpr int kExitUsage = 2;
// CLI verbs over the admin API: the running fedproxy gave no HTTP answer.
constexpr int kExitUnreachable = 3;

}  // namespace fedproxy::app

// `fedproxy audit verify FILE`: checks an audit log's hash chain (SPEC §10).
#include <cstdio>
#include <cstring>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <system_error>

#include "policy/audit.hpp"
#include "proxy/app/args.hpp"
#include "proxy/app/commands.hpp"

namespace fedproxy::app {

namespace {

const char* kAuditUsage =
    "Usage: fedproxy audit verify FILE\n"
    "Checks an audit log's hash chain: every line is a JSON record whose \"prev\"\n"
    "is the SHA-256 of the line before it (64 zeros for the first line).\n"
    "Prints \"FILE: OK (N lines)\" and exits 0, or names the first bad line and\n"
    "exits 1. FILE \"-\" reads standard input.\n"
    "Note: a chain cannot prove its own end: removing or editing the last line(s)\n"
    "is only detectable against a chain head recorded elsewhere.\n"
    "Exit 2 on a usage error (unknown option, missing or extra argument).\n";

}  // namespace

int cmd_audit(const std::vector<std::string>& args) {
  static const CommandSpec spec{"audit", kAuditUsage, {}, 2, 2};
  ParsedArgs parsed;
  if (auto done = parse_args(spec, args, &parsed)) return *done;
  if (parsed.positional()[0] != "verify") {
    return usage_error(spec, "unknown subcommand '" + parsed.positional()[0] + "'");
  }
  const std::string& path = parsed.positional()[1];

  policy::AuditVerifyResult res;
  if (path == "-") {
    res = policy::verify_audit_log(std::cin);
  } else {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      std::fprintf(stderr, "%s: is a directory\n", path.c_str());
      return kExitProblems;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
      std::fprintf(stderr, "%s: cannot open: %s\n", path.c_str(), std::strerror(errno));
      return kExitProblems;
    }
    res = policy::verify_audit_log(in);
  }
  if (!res.ok) {
    std::printf("%s: %s\n", path.c_str(), res.error.c_str());
    return kExitProblems;
  }
  std::printf("%s: OK (%llu lines)\n", path.c_str(), static_cast<unsigned long long>(res.lines));
  return 0;
}

}  // namespace fedproxy::app

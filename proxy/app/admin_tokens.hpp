// The admin token files of a config (SPEC §10 "Admin authentication"), read
// where the other files of a snapshot are read: at start and at every
// reload, never while serving. A rotated token applies with the next reload.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"
#include "proxy/base/result.hpp"
#include "proxy/core/admin_gate.hpp"

namespace fedproxy::app {

// Shortest token accepted: 16 characters (64 bits as hex). `openssl rand
// -hex 32` gives 64.
constexpr size_t kMinAdminTokenChars = 16;
constexpr size_t kMaxAdminTokenChars = 4096;

// Each file holds one token; trailing whitespace (the newline `echo` or an
// editor adds) is dropped. Refused: an unreadable, empty or world-readable
// file (unless allow_world_readable: FEDPROXY_ALLOW_INSECURE_KEY_PERMS), a
// token shorter than kMinAdminTokenChars, one with characters a Bearer token
// cannot carry (RFC 6750 b64token), and one token in two files (the actor
// would be ambiguous: refused in the later file).
// One result per file, in the order of files: its token, or why not (message
// "<config key>: <why>", error().file the token file; code io, refused for a
// world-readable file, else invalid). Every file is judged, so one `fedproxy
// check` lists every problem.
std::vector<base::Result<core::AdminToken>> load_admin_tokens(const std::vector<config::AdminTokenFile>& files,
                                                              bool allow_world_readable);

}  // namespace fedproxy::app

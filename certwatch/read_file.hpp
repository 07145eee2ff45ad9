// Reading the small files a snapshot is built from (certificates, keys, CA
// bundles, CRLs, admin tokens): whole, bounded, with the file's mode for the
// permission checks of secrets.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace fedproxy::certwatch {

// Reads a whole file (at most 16 MiB). On failure returns false and sets err
// to "cannot read: <strerror>" (or a size/empty complaint). *mode (optional)
// gets st_mode.
bool read_file(const std::string& path, std::string& out, mode_t* mode, std::string& err);

// For a secret file (private key, admin token): "" when others cannot read
// it, else "<what> file is world-readable (mode 0644); run chmod 600 on it,
// or set FEDPROXY_ALLOW_INSECURE_KEY_PERMS=1".
std::string world_readable_error(mode_t mode, std::string_view what);

}  // namespace fedproxy::certwatch

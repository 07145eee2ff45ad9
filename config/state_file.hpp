// Reading and writing the state file (SPEC §12): written atomically (a temp
// file in the same directory, write, fsync, rename, fsync of the
// directory), so a crash leaves the old or the new file, never half of one.
#pragma once

#include <string>

#include "config/state.hpp"
#include "proxy/base/result.hpp"

namespace fedproxy::config {

// A missing file is an empty state (nothing changed yet); an unreadable or
// malformed one is an error naming the file.
base::Result<State> read_state_file(const std::string& path);

base::Status write_state_file(const std::string& path, const State& state);

// The same atomic write for any file kept beside the state (a joined peer's
// CA bundle, SPEC §13), mode 0600.
base::Status write_file_atomically(const std::string& path, const std::string& text);

}  // namespace fedproxy::config

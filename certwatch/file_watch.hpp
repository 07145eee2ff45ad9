// Change detection for the files a reload depends on, and the debounce/retry
// schedule of reloads. Pure cores: no libuv, no clock read (time is passed in
// as monotonic milliseconds), and file *contents* are never read here —
// loading and validation are load_cert_bundle() and the config compiler.
//
// What polling can see (SPEC §8: mtime/size/inode every watch_interval_ms):
//  - stat() follows symlinks, so a Kubernetes Secret/ConfigMap update
//    (tls.crt -> ..data/tls.crt, ..data -> ..2026_11_23_10_00_00.123/, then
//    an atomic rename of a new ..data symlink) shows up as a new dev/inode and
//    a new resolved real path, even when the new file has the same size and
//    mtime. Lstat'ing each symlink in the chain adds nothing: the only
//    retargeting that matters is one that changes the resolved file, and
//    that changes (dev, ino) or real_path; retargeting to an alias of the same
//    file changes nothing a reload would read.
//  - write-to-temp-then-rename: new inode.
//  - in-place rewrite: size or mtime, and ctime — which userland cannot set,
//    so even a same-size rewrite whose mtime is forced back (utimensat,
//    `touch -d`) is seen, as is a chmod/chown of a key file.
//  - deletion, creation, a dangling symlink, a permission error (the error
//    text is part of the stamp).
// What it cannot see: an in-place rewrite with the same size, the same mtime
// and a ctime in the same timestamp tick as the state the last poll recorded
// (the kernel's coarse clock: a few ms; every stat poller shares this). SIGHUP
// and POST /reload cover it. A change that comes and goes back between two
// polls (same inode, size, mtime, ctime) is by definition invisible too.
//
// Ordering contract for the caller: poll() before loading. The stamps a poll
// records are then never newer than what the load read, so a file replaced
// while a reload was reading it is reported by the next poll.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fedproxy::certwatch {

struct FileStamp {
  bool exists = false;      // stat() succeeded (symlinks followed)
  uint64_t dev = 0;
  uint64_t ino = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;     // inode change time: not settable from userland
  std::string real_path;    // realpath(): which file the symlink chain reaches
  std::string error;        // strerror text when !exists (or why real_path is empty)

  bool operator==(const FileStamp&) const = default;
};

// stat() + realpath(), re-checked so the real path and the inode belong to the
// same file even when a symlink swap races with the call.
FileStamp stat_file(const std::string& path);

// A watched directory: its identity (dev, ino, real path, error — not its
// mtime, which also moves for files we ignore) and its *.json entries, sorted
// by name, each stat()ed through symlinks (a ConfigMap-mounted manifests
// directory holds `x.json -> ..data/x.json`). Non-recursive.
struct DirStamp {
  FileStamp self;
  std::vector<std::pair<std::string, FileStamp>> entries;  // name → stamp

  bool operator==(const DirStamp&) const = default;
};

DirStamp stat_dir(const std::string& path);

// "*.json": a name ending in ".json" with something before it (hidden names
// included, as the manifest loader's "every *.json file" does).
bool is_json_name(std::string_view name);

class WatchSet {
 public:
  // Replace the watched paths. Stamps of paths kept across the call are kept;
  // new paths are baselined silently by the next poll() (call poll() right
  // after a reload that changed paths, so the window is short).
  void set_files(std::vector<std::string> paths);
  void set_dirs(std::vector<std::string> paths);

  // Stats everything and compares with the previous poll. The first poll of a
  // path records its baseline and reports nothing. Returns true when anything
  // differs; *what_changed (if given) then names the first changes, e.g.
  // "/etc/tls/tls.crt: replaced; /etc/m: b.json added (+2 more)". Set to ""
  // when nothing changed.
  bool poll(std::string* what_changed = nullptr);

  // The stamp recorded by the last poll, or nullptr (unwatched / not polled).
  const FileStamp* file_stamp(const std::string& path) const;
  const DirStamp* dir_stamp(const std::string& path) const;

 private:
  std::vector<std::pair<std::string, std::optional<FileStamp>>> files_;
  std::vector<std::pair<std::string, std::optional<DirStamp>>> dirs_;
};

// When to attempt a reload. Times are monotonic milliseconds (>= 0) supplied
// by the caller (uv_now); next_deadline() tells the caller when to look again.
//  - A burst of changes is one reload: due once no change was seen for
//    quiet_ms, but no later than max_delay_ms after the burst's first change.
//  - A failed attempt while a file change is unapplied (cert written before
//    its key) is retried after retry_initial_ms, doubling up to retry_max_ms,
//    for as long as it keeps failing. A new change resets the backoff (and is
//    debounced again). A failed request_now() with no file change behind it is
//    not retried: the same files would fail the same way, and any fix to them
//    is a change the poller reports.
//  - request_now() (SIGHUP, POST /reload) is due at once.
// Attempts are synchronous with respect to this object: due() → load →
// attempted(), with no changed() in between (a change seen while an attempt
// runs on another thread must be reported after attempted()).
class ReloadDebouncer {
 public:
  struct Options {
    int64_t quiet_ms = 300;
    int64_t max_delay_ms = 2000;
    int64_t retry_initial_ms = 500;
    int64_t retry_max_ms = 30000;
  };

  ReloadDebouncer();
  explicit ReloadDebouncer(const Options& options);

  void changed(int64_t now);
  void request_now(int64_t now);
  bool due(int64_t now) const;
  // The earliest time an attempt becomes due (<= now if already due), or -1
  // when nothing is pending.
  int64_t next_deadline() const;
  void attempted(int64_t now, bool ok);

  // Failed attempts since the last success (for /status and logs).
  int consecutive_failures() const { return failures_; }
  // A file change was seen and not yet applied by a successful attempt.
  bool change_pending() const { return change_pending_; }

 private:
  Options opt_;
  int64_t burst_first_ = -1;  // first change of the unattempted burst, -1 = none
  int64_t burst_last_ = -1;
  int64_t forced_at_ = -1;    // request_now time, -1 = none
  int64_t retry_at_ = -1;     // -1 = no retry scheduled
  int64_t backoff_ms_;        // delay of the next retry
  int failures_ = 0;
  bool change_pending_ = false;
};

}  // namespace fedproxy::certwatch

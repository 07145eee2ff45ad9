// Stat-based change detection and the reload debounce/retry schedule.
// Never opens a watched file for reading.
#include "certwatch/file_watch.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <system_error>

namespace fedproxy::certwatch {

namespace {

constexpr int kStatAttempts = 3;
constexpr size_t kMaxReported = 3;

std::string errno_text(int err) { return std::generic_category().message(err); }

int64_t to_ns(const struct timespec& t) {
  return static_cast<int64_t>(t.tv_sec) * 1'000'000'000 + static_cast<int64_t>(t.tv_nsec);
}

void fill(FileStamp& s, const struct stat& st) {
  s.exists = true;
  s.dev = static_cast<uint64_t>(st.st_dev);
  s.ino = static_cast<uint64_t>(st.st_ino);
  s.size = static_cast<uint64_t>(st.st_size);
  s.mtime_ns = to_ns(st.st_mtim);
  s.ctime_ns = to_ns(st.st_ctim);
}

FileStamp missing(int err) {
  FileStamp s;
  s.error = errno_text(err);
  return s;
}

// Why two stamps of one path differ, most significant reason first.
std::string describe(const FileStamp& a, const FileStamp& b) {
  if (!a.exists && b.exists) return "created";
  if (a.exists && !b.exists) return "deleted (" + b.error + ")";
  if (!a.exists && !b.exists) return "still missing, now: " + b.error;
  std::string why;
  auto add = [&why](const std::string& part) {
    if (!why.empty()) why += ", ";
    why += part;
  };
  const bool moved = a.real_path != b.real_path;
  const bool new_inode = a.dev != b.dev || a.ino != b.ino;
  if (moved) add("replaced: now resolves to " + b.real_path);
  if (new_inode && !moved) add("replaced: new inode");
  if (a.size != b.size) add("size " + std::to_string(a.size) + " -> " + std::to_string(b.size));
  // For a replaced file its times say nothing more.
  if (!moved && !new_inode && a.mtime_ns != b.mtime_ns) add("mtime changed");
  if (why.empty() && a.ctime_ns != b.ctime_ns) add("ctime changed (in-place rewrite or metadata change)");
  if (a.error != b.error) add(b.error.empty() ? "resolved again" : b.error);
  return why.empty() ? "changed" : why;
}

void describe_dir(const std::string& path, const DirStamp& a, const DirStamp& b, std::vector<std::string>& out) {
  if (a.self != b.self) out.push_back(path + ": " + describe(a.self, b.self));
  // Both entry lists are sorted by name: merge.
  auto i = a.entries.begin();
  auto j = b.entries.begin();
  auto entry = [&path](const std::string& name) { return path + "/" + name; };
  while (i != a.entries.end() || j != b.entries.end()) {
    if (j == b.entries.end() || (i != a.entries.end() && i->first < j->first)) {
      out.push_back(entry(i->first) + ": removed");
      ++i;
    } else if (i == a.entries.end() || j->first < i->first) {
      out.push_back(entry(j->first) + ": added");
      ++j;
    } else {
      if (i->second != j->second) out.push_back(entry(i->first) + ": " + describe(i->second, j->second));
      ++i;
      ++j;
    }
  }
}

template <typename Stamp>
void replace_paths(std::vector<std::pair<std::string, std::optional<Stamp>>>& watched,
                   std::vector<std::string> paths) {
  std::vector<std::pair<std::string, std::optional<Stamp>>> next;
  next.reserve(paths.size());
  for (auto& p : paths) {
    bool dup = std::any_of(next.begin(), next.end(), [&p](const auto& e) { return e.first == p; });
    if (dup) continue;
    std::optional<Stamp> kept;
    for (auto& old : watched) {
      if (old.first == p) {
        kept = std::move(old.second);
        break;
      }
    }
    next.emplace_back(std::move(p), std::move(kept));
  }
  watched = std::move(next);
}

}  // namespace

FileStamp stat_file(const std::string& path) {
  FileStamp s;
  struct stat st1 {};
  for (int attempt = 0; attempt < kStatAttempts; ++attempt) {
    if (::stat(path.c_str(), &st1) != 0) return missing(errno);
    char* resolved = ::realpath(path.c_str(), nullptr);
    if (resolved == nullptr) continue;  // swapped away between the two calls
    std::string real(resolved);
    std::free(resolved);
    struct stat st2 {};
    if (::stat(real.c_str(), &st2) != 0) continue;
    if (st1.st_dev != st2.st_dev || st1.st_ino != st2.st_ino) continue;
    fill(s, st2);
    s.real_path = std::move(real);
    return s;
  }
  // Still racing with a swap: report what stat() saw, flagged. The stamp
  // differs from both the old and the settled state, so this poll reports a
  // change and the next one records the settled state.
  fill(s, st1);
  s.error = "path kept changing while being examined";
  return s;
}

bool is_json_name(std::string_view name) {
  constexpr std::string_view ext = ".json";
  return name.size() > ext.size() && name.substr(name.size() - ext.size()) == ext;
}

DirStamp stat_dir(const std::string& path) {
  DirStamp d;
  d.self = stat_file(path);
  if (!d.self.exists) return d;
  // Identity only: the directory's own mtime/size/ctime also move when a file
  // we ignore comes or goes; the entries carry the changes that matter.
  d.self.size = 0;
  d.self.mtime_ns = 0;
  d.self.ctime_ns = 0;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) {
    d.self.error = "cannot list: " + errno_text(errno);
    return d;
  }
  for (;;) {
    errno = 0;
    struct dirent* e = ::readdir(dir);
    if (e == nullptr) {
      if (errno != 0) d.self.error = "cannot list: " + errno_text(errno);
      break;
    }
    std::string_view name(e->d_name);
    if (!is_json_name(name)) continue;
    std::string n(name);
    FileStamp st = stat_file(path + "/" + n);
    d.entries.emplace_back(std::move(n), std::move(st));
  }
  ::closedir(dir);
  std::sort(d.entries.begin(), d.entries.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  return d;
}

void WatchSet::set_files(std::vector<std::string> paths) { replace_paths(files_, std::move(paths)); }

void WatchSet::set_dirs(std::vector<std::string> paths) { replace_paths(dirs_, std::move(paths)); }

bool WatchSet::poll(std::string* what_changed) {
  std::vector<std::string> changes;
  for (auto& [path, stamp] : files_) {
    FileStamp now = stat_file(path);
    if (stamp && *stamp != now) changes.push_back(path + ": " + describe(*stamp, now));
    stamp = std::move(now);
  }
  for (auto& [path, stamp] : dirs_) {
    DirStamp now = stat_dir(path);
    if (stamp && *stamp != now) describe_dir(path, *stamp, now, changes);
    stamp = std::move(now);
  }
  if (what_changed != nullptr) {
    what_changed->clear();
    for (size_t i = 0; i < changes.size() && i < kMaxReported; ++i) {
      if (i > 0) *what_changed += "; ";
      *what_changed += changes[i];
    }
    if (changes.size() > kMaxReported) {
      *what_changed += " (+" + std::to_string(changes.size() - kMaxReported) + " more)";
    }
  }
  return !changes.empty();
}

const FileStamp* WatchSet::file_stamp(const std::string& path) const {
  for (const auto& [p, stamp] : files_) {
    if (p == path) return stamp ? &*stamp : nullptr;
  }
  return nullptr;
}

const DirStamp* WatchSet::dir_stamp(const std::string& path) const {
  for (const auto& [p, stamp] : dirs_) {
    if (p == path) return stamp ? &*stamp : nullptr;
  }
  return nullptr;
}

// --- ReloadDebouncer ---

ReloadDebouncer::ReloadDebouncer() : ReloadDebouncer(Options{}) {}

ReloadDebouncer::ReloadDebouncer(const Options& options) : opt_(options), backoff_ms_(options.retry_initial_ms) {}

void ReloadDebouncer::changed(int64_t now) {
  if (burst_first_ < 0) burst_first_ = now;
  burst_last_ = now;
  change_pending_ = true;
  // A new change: the files may be consistent now. Debounce it afresh and
  // start the backoff over for what follows.
  retry_at_ = -1;
  backoff_ms_ = opt_.retry_initial_ms;
}

void ReloadDebouncer::request_now(int64_t now) {
  if (forced_at_ < 0) forced_at_ = now;
}

int64_t ReloadDebouncer::next_deadline() const {
  int64_t d = -1;
  auto take = [&d](int64_t t) {
    if (t >= 0 && (d < 0 || t < d)) d = t;
  };
  take(forced_at_);
  if (burst_first_ >= 0) take(std::min(burst_last_ + opt_.quiet_ms, burst_first_ + opt_.max_delay_ms));
  take(retry_at_);
  return d;
}

bool ReloadDebouncer::due(int64_t now) const {
  int64_t d = next_deadline();
  return d >= 0 && now >= d;
}

void ReloadDebouncer::attempted(int64_t now, bool ok) {
  forced_at_ = -1;
  burst_first_ = -1;
  burst_last_ = -1;
  retry_at_ = -1;
  if (ok) {
    failures_ = 0;
    change_pending_ = false;
    backoff_ms_ = opt_.retry_initial_ms;
    return;
  }
  ++failures_;
  if (change_pending_) {
    retry_at_ = now + backoff_ms_;
    backoff_ms_ = std::min(backoff_ms_ * 2, opt_.retry_max_ms);
  }
}

}  // namespace fedproxy::certwatch

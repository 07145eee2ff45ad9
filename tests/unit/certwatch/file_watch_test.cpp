// WatchSet against real files in a temp dir (renames, in-place rewrites with
// forced mtimes, a simulated Kubernetes ..data volume), and ReloadDebouncer
// against a fake clock.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "certwatch/file_watch.hpp"
#include "tests/support/test_pki.hpp"

using namespace fedproxy;
using certwatch::DirStamp;
using certwatch::FileStamp;
using certwatch::ReloadDebouncer;
using certwatch::WatchSet;
using fedproxy::testing::TempDir;

namespace {

bool contains(const std::string& s, const std::string& needle) { return s.find(needle) != std::string::npos; }

void put(const std::string& path, const std::string& content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("cannot create " + path);
  if (::write(fd, content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
    ::close(fd);
    throw std::runtime_error("cannot write " + path);
  }
  ::close(fd);
}

// Same bytes count, same inode: open without O_TRUNC and overwrite.
void rewrite_in_place(const std::string& path, const std::string& content) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open " + path);
  if (::pwrite(fd, content.data(), content.size(), 0) != static_cast<ssize_t>(content.size())) {
    ::close(fd);
    throw std::runtime_error("cannot write " + path);
  }
  ::close(fd);
}

void put_atomic(const std::string& path, const std::string& content) {
  put(path + ".tmp", content);
  if (::rename((path + ".tmp").c_str(), path.c_str()) != 0) throw std::runtime_error("rename failed");
}

struct timespec mtime_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("stat failed");
  return st.st_mtim;
}

void set_mtime(const std::string& path, struct timespec t) {
  struct timespec times[2] = {t, t};
  if (::utimensat(AT_FDCWD, path.c_str(), times, 0) != 0) throw std::runtime_error("utimensat failed");
}

// Longer than the kernel's coarse timestamp tick (1-10 ms), so a ctime set
// after it differs from one set before.
void past_timestamp_tick() { std::this_thread::sleep_for(std::chrono::milliseconds(30)); }

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) != 0) throw std::runtime_error("mkdir failed: " + path);
}

void make_symlink(const std::string& target, const std::string& link) {
  if (::symlink(target.c_str(), link.c_str()) != 0) throw std::runtime_error("symlink failed: " + link);
}

// A Kubernetes Secret/ConfigMap volume as kubelet's AtomicWriter lays it out:
//   tls.crt -> ..data/tls.crt, ..data -> ..2026_11_23_10_00_00.<gen>/
// publish(): write a new timestamped dir, point a ..data_tmp symlink at it,
// rename() it over ..data (atomic), add missing user-visible links, then
// remove the previous timestamped dir.
struct K8sVolume {
  explicit K8sVolume(std::string r) : root(std::move(r)) {}
  std::string root;
  int gen = 0;
  std::string current;  // name of the live timestamped dir

  std::string ts_dir(int g) const { return "..2026_11_23_10_00_00." + std::to_string(100 + g); }
  std::string path(const std::string& name) const { return root + "/" + name; }

  // prepare(dir) may add more to the new dir (hard links, mtimes) before the swap.
  void publish(const std::vector<std::pair<std::string, std::string>>& files,
               const std::function<void(const std::string& new_dir)>& prepare = nullptr) {
    std::string name = ts_dir(++gen);
    std::string dir = root + "/" + name;
    make_dir(dir);
    for (const auto& [f, content] : files) {
      if (!content.empty()) put(dir + "/" + f, content);
    }
    if (prepare) prepare(dir);
    make_symlink(name, root + "/..data_tmp");
    if (::rename((root + "/..data_tmp").c_str(), (root + "/..data").c_str()) != 0) {
      throw std::runtime_error("rename ..data_tmp failed");
    }
    for (const auto& [f, content] : files) {
      struct stat st {};
      if (::lstat(path(f).c_str(), &st) != 0) make_symlink("..data/" + f, path(f));
    }
    if (!current.empty()) {
      std::string old = root + "/" + current;
      for (const auto& [f, content] : files) ::unlink((old + "/" + f).c_str());
      ::rmdir(old.c_str());
    }
    current = name;
  }
};

}  // namespace

TEST_SUITE("file_watch") {

TEST_CASE("first poll records a baseline; no change stays quiet") {
  TempDir tmp;
  std::string crt = tmp.write("tls.crt", "CERT-1");
  std::string key = tmp.write("tls.key", "KEY-1");
  WatchSet w;
  w.set_files({crt, key});
  std::string what = "stale";
  CHECK_FALSE(w.poll(&what));
  CHECK(what.empty());
  for (int i = 0; i < 5; ++i) {
    CHECK_FALSE(w.poll(&what));
    CHECK(what.empty());
  }
  const FileStamp* s = w.file_stamp(crt);
  REQUIRE(s != nullptr);
  CHECK(s->exists);
  CHECK(s->size == 6);
  CHECK(s->ino != 0);
  CHECK(s->error.empty());
  CHECK(w.file_stamp("/not/watched") == nullptr);
}

TEST_CASE("write to temp then rename is detected, then stable") {
  TempDir tmp;
  std::string crt = tmp.write("tls.crt", "CERT-1");
  WatchSet w;
  w.set_files({crt});
  REQUIRE_FALSE(w.poll());
  put_atomic(crt, "CERT-2 longer");
  std::string what;
  CHECK(w.poll(&what));
  CHECK(contains(what, crt));
  CHECK(contains(what, "new inode"));
  CHECK_FALSE(w.poll(&what));
  CHECK_FALSE(w.poll(&what));
}

TEST_CASE("rename of a file with the same size and the same mtime is detected via the inode") {
  TempDir tmp;
  std::string crt = tmp.write("tls.crt", "CERT-AAAA");
  WatchSet w;
  w.set_files({crt});
  REQUIRE_FALSE(w.poll());
  FileStamp before = *w.file_stamp(crt);
  // cert-manager rewriting within the same second / `touch -d` to the old time.
  put(crt + ".tmp", "CERT-BBBB");
  set_mtime(crt + ".tmp", mtime_of(crt));
  REQUIRE(::rename((crt + ".tmp").c_str(), crt.c_str()) == 0);
  std::string what;
  CHECK(w.poll(&what));
  FileStamp after = *w.file_stamp(crt);
  CHECK(after.size == before.size);
  CHECK(after.mtime_ns == before.mtime_ns);
  CHECK(after.ino != before.ino);
  CHECK(what == crt + ": replaced: new inode");
  CHECK_FALSE(w.poll());
}

TEST_CASE("in-place rewrite: size change, mtime change, and same size + forced same mtime via ctime") {
  TempDir tmp;
  std::string crt = tmp.write("tls.crt", "CERT-AAAA");
  WatchSet w;
  w.set_files({crt});
  REQUIRE_FALSE(w.poll());
  std::string what;

  SUBCASE("size") {
    rewrite_in_place(crt, "CERT-AAAA-and-more");
    CHECK(w.poll(&what));
    CHECK(contains(what, "size 9 -> 18"));
  }
  SUBCASE("mtime") {
    past_timestamp_tick();
    rewrite_in_place(crt, "CERT-BBBB");
    CHECK(w.poll(&what));
    CHECK(contains(what, "mtime changed"));
  }
  SUBCASE("same inode, same size, mtime forced back: only ctime moves") {
    FileStamp before = *w.file_stamp(crt);
    past_timestamp_tick();
    rewrite_in_place(crt, "CERT-BBBB");
    struct timespec old_mtime;
    old_mtime.tv_sec = before.mtime_ns / 1'000'000'000;
    old_mtime.tv_nsec = before.mtime_ns % 1'000'000'000;
    set_mtime(crt, old_mtime);
    CHECK(w.poll(&what));
    FileStamp after = *w.file_stamp(crt);
    CHECK(after.ino == before.ino);
    CHECK(after.size == before.size);
    CHECK(after.mtime_ns == before.mtime_ns);
    CHECK(after.ctime_ns != before.ctime_ns);
    CHECK(contains(what, "ctime changed"));
    // Limitation (documented in file_watch.hpp): had this rewrite landed in
    // the same coarse-clock tick as the write the baseline saw, the ctime
    // would be equal too and polling could not see it — SIGHUP/POST /reload.
  }
  SUBCASE("chmod of a key file is a change (the loader checks key permissions)") {
    past_timestamp_tick();
    REQUIRE(::chmod(crt.c_str(), 0644) == 0);
    CHECK(w.poll(&what));
  }
  CHECK_FALSE(w.poll());
}

TEST_CASE("deleted is detected (exists=false), re-created is detected") {
  TempDir tmp;
  std::string key = tmp.write("tls.key", "KEY-1");
  WatchSet w;
  w.set_files({key});
  REQUIRE_FALSE(w.poll());
  REQUIRE(::unlink(key.c_str()) == 0);
  std::string what;
  CHECK(w.poll(&what));
  CHECK(contains(what, key + ": deleted"));
  REQUIRE(w.file_stamp(key) != nullptr);
  CHECK_FALSE(w.file_stamp(key)->exists);
  CHECK_FALSE(w.file_stamp(key)->error.empty());
  CHECK_FALSE(w.poll());  // still missing: no new change
  put(key, "KEY-1");
  CHECK(w.poll(&what));
  CHECK(contains(what, "created"));
  CHECK(w.file_stamp(key)->exists);
  CHECK_FALSE(w.poll());
}

TEST_CASE("missing at baseline, then created; dangling symlink is missing") {
  TempDir tmp;
  std::string crt = tmp.path() + "/tls.crt";
  std::string link = tmp.path() + "/link.crt";
  make_symlink("nowhere/tls.crt", link);
  FileStamp dangling = certwatch::stat_file(link);
  CHECK_FALSE(dangling.exists);
  CHECK_FALSE(dangling.error.empty());
  WatchSet w;
  w.set_files({crt, link});
  CHECK_FALSE(w.poll());
  put(crt, "CERT");
  std::string what;
  CHECK(w.poll(&what));
  CHECK(what == crt + ": created");
}

TEST_CASE("stat_file reports the resolved real path") {
  TempDir tmp;
  std::string real = tmp.write("a.crt", "CERT");
  make_symlink("a.crt", tmp.path() + "/b.crt");
  FileStamp s = certwatch::stat_file(tmp.path() + "/b.crt");
  REQUIRE(s.exists);
  char* rp = ::realpath(real.c_str(), nullptr);
  REQUIRE(rp != nullptr);
  CHECK(s.real_path == rp);
  std::free(rp);
}

TEST_CASE("Kubernetes ..data symlink swap is detected, and polls afterwards are stable") {
  TempDir tmp;
  K8sVolume vol{tmp.path()};
  vol.publish({{"tls.crt", "CERT-AAAA"}, {"tls.key", "KEY-AAAA"}, {"ca.crt", "CA-1"}});
  WatchSet w;
  w.set_files({vol.path("tls.crt"), vol.path("tls.key"), vol.path("ca.crt")});
  REQUIRE_FALSE(w.poll());
  const FileStamp before = *w.file_stamp(vol.path("tls.crt"));
  CHECK(contains(before.real_path, vol.ts_dir(1) + "/tls.crt"));

  SUBCASE("new content, same sizes, same mtimes") {
    std::vector<std::pair<std::string, std::string>> files = {
        {"tls.crt", "CERT-BBBB"}, {"tls.key", "KEY-BBBB"}, {"ca.crt", "CA-1"}};
    std::string old_dir = tmp.path() + "/" + vol.current;
    vol.publish(files, [&](const std::string& dir) {
      for (const auto& f : files) set_mtime(dir + "/" + f.first, mtime_of(old_dir + "/" + f.first));
    });
    std::string what;
    CHECK(w.poll(&what));
    const FileStamp after = *w.file_stamp(vol.path("tls.crt"));
    CHECK(after.size == before.size);
    CHECK(after.mtime_ns == before.mtime_ns);
    CHECK(after.ino != before.ino);
    CHECK(contains(after.real_path, vol.ts_dir(2) + "/tls.crt"));
    CHECK(contains(what, vol.path("tls.crt") + ": replaced: now resolves to "));
  }
  SUBCASE("swap to the very same files (hard links) at a new path still counts") {
    std::string old_dir = tmp.path() + "/" + vol.current;
    std::vector<std::pair<std::string, std::string>> files = {{"tls.crt", ""}, {"tls.key", ""}, {"ca.crt", ""}};
    vol.publish(files, [&](const std::string& dir) {
      for (const auto& f : files) {
        REQUIRE(::link((old_dir + "/" + f.first).c_str(), (dir + "/" + f.first).c_str()) == 0);
      }
    });
    CHECK(w.poll());
    const FileStamp after = *w.file_stamp(vol.path("tls.crt"));
    CHECK(after.ino == before.ino);
    CHECK(after.real_path != before.real_path);
  }
  for (int i = 0; i < 3; ++i) CHECK_FALSE(w.poll());
}

TEST_CASE("polls racing with ..data swaps settle on the final state") {
  TempDir tmp;
  K8sVolume vol(tmp.path());
  vol.publish({{"tls.crt", "CERT-0"}, {"tls.key", "KEY-0"}});
  WatchSet w;
  w.set_files({vol.path("tls.crt"), vol.path("tls.key")});
  w.set_dirs({tmp.path()});
  REQUIRE_FALSE(w.poll());
  std::thread swapper([&vol] {
    for (int i = 1; i <= 200; ++i) {
      vol.publish({{"tls.crt", "CERT-" + std::to_string(i)}, {"tls.key", "KEY-" + std::to_string(i)}});
    }
  });
  int changes = 0;
  for (int i = 0; i < 200; ++i) changes += w.poll() ? 1 : 0;
  swapper.join();
  w.poll();
  CHECK(changes > 0);
  for (const char* f : {"tls.crt", "tls.key"}) {
    const FileStamp* s = w.file_stamp(vol.path(f));
    REQUIRE(s != nullptr);
    CHECK(s->exists);
    CHECK(s->error.empty());
    CHECK(contains(s->real_path, vol.current + "/" + f));
    CHECK(*s == certwatch::stat_file(vol.path(f)));
  }
  CHECK_FALSE(w.poll());
}

TEST_CASE("Kubernetes ConfigMap as a watched manifests dir: ..data swap is seen through the entries") {
  TempDir tmp;
  K8sVolume vol{tmp.path()};
  vol.publish({{"acme.json", "{\"org\":\"acme\"}"}, {"beta.json", "{\"org\":\"beta\"}"}});
  WatchSet w;
  w.set_dirs({tmp.path()});
  REQUIRE_FALSE(w.poll());
  const DirStamp* d = w.dir_stamp(tmp.path());
  REQUIRE(d != nullptr);
  REQUIRE(d->entries.size() == 2);  // ..data and ..2026_* are not *.json
  CHECK(d->entries[0].first == "acme.json");
  CHECK(d->entries[1].first == "beta.json");
  vol.publish({{"acme.json", "{\"org\":\"acme\"}"}, {"beta.json", "{\"org\":\"BETA\"}"}});
  std::string what;
  CHECK(w.poll(&what));
  CHECK(contains(what, tmp.path() + "/acme.json: replaced"));
  CHECK(contains(what, tmp.path() + "/beta.json: replaced"));
  CHECK_FALSE(w.poll());
}

TEST_CASE("watched dir: *.json added, changed, removed; other files ignored") {
  TempDir tmp;
  std::string dir = tmp.path() + "/manifests";
  make_dir(dir);
  put(dir + "/acme.json", "{}");
  put(dir + "/README.md", "docs");
  WatchSet w;
  w.set_dirs({dir});
  REQUIRE_FALSE(w.poll());
  std::string what;

  put(dir + "/beta.json", "{}");
  CHECK(w.poll(&what));
  CHECK(what == dir + "/beta.json: added");
  CHECK_FALSE(w.poll());

  put_atomic(dir + "/acme.json", "{\"x\":1}");  // .tmp created and renamed away: not *.json
  CHECK(w.poll(&what));
  CHECK(contains(what, dir + "/acme.json: replaced"));
  CHECK_FALSE(contains(what, ".tmp"));

  REQUIRE(::unlink((dir + "/beta.json").c_str()) == 0);
  CHECK(w.poll(&what));
  CHECK(what == dir + "/beta.json: removed");

  // Non-json files come and go without a change (the directory's own mtime moves).
  past_timestamp_tick();
  put(dir + "/notes.txt", "x");
  put(dir + "/.acme.json.swp", "x");
  put(dir + "/json", "x");
  put(dir + "/.json", "x");
  CHECK_FALSE(w.poll(&what));
  REQUIRE(::unlink((dir + "/notes.txt").c_str()) == 0);
  CHECK_FALSE(w.poll(&what));
  CHECK(what.empty());
}

TEST_CASE("watched dir: deleted, re-created, replaced by a symlink to another dir") {
  TempDir tmp;
  std::string dir = tmp.path() + "/manifests";
  make_dir(dir);
  put(dir + "/acme.json", "{}");
  WatchSet w;
  w.set_dirs({dir});
  REQUIRE_FALSE(w.poll());
  std::string what;

  REQUIRE(::unlink((dir + "/acme.json").c_str()) == 0);
  REQUIRE(::rmdir(dir.c_str()) == 0);
  CHECK(w.poll(&what));
  CHECK(contains(what, dir + ": deleted"));
  CHECK(contains(what, dir + "/acme.json: removed"));
  CHECK_FALSE(w.dir_stamp(dir)->self.exists);
  CHECK_FALSE(w.poll());

  std::string other = tmp.path() + "/other";
  make_dir(other);
  put(other + "/acme.json", "{}");
  make_symlink("other", dir);
  CHECK(w.poll(&what));
  CHECK(contains(what, dir + ": created"));
  CHECK_FALSE(w.poll());

  // A file path given as a directory: an error, not a crash; stable.
  std::string file = tmp.write("plain", "x");
  w.set_dirs({file});
  CHECK_FALSE(w.poll());
  CHECK(contains(w.dir_stamp(file)->self.error, "cannot list"));
  CHECK_FALSE(w.poll());
}

TEST_CASE("what_changed names the first changes and counts the rest") {
  TempDir tmp;
  std::vector<std::string> files;
  for (int i = 0; i < 5; ++i) files.push_back(tmp.write("f" + std::to_string(i), "x"));
  WatchSet w;
  w.set_files(files);
  REQUIRE_FALSE(w.poll());
  for (const auto& f : files) put_atomic(f, "yy");
  std::string what;
  CHECK(w.poll(&what));
  CHECK(contains(what, files[0] + ": "));
  CHECK(contains(what, files[2] + ": "));
  CHECK_FALSE(contains(what, files[3] + ": "));
  CHECK(contains(what, "(+2 more)"));
  CHECK(w.poll(nullptr) == false);
}

TEST_CASE("set_files keeps the baselines of kept paths; new paths are baselined silently") {
  TempDir tmp;
  std::string a = tmp.write("a", "1");
  std::string b = tmp.write("b", "1");
  WatchSet w;
  w.set_files({a, a});  // duplicates collapse
  REQUIRE_FALSE(w.poll());
  put_atomic(a, "22");
  w.set_files({b, a});
  std::string what;
  CHECK(w.poll(&what));  // a's change since its baseline is still reported
  CHECK(what == a + ": replaced: new inode, size 1 -> 2");
  CHECK_FALSE(w.poll());
  w.set_files({b});
  CHECK(w.file_stamp(a) == nullptr);
  CHECK_FALSE(w.poll());
}

TEST_CASE("is_json_name") {
  CHECK(certwatch::is_json_name("acme.json"));
  CHECK(certwatch::is_json_name(".hidden.json"));
  CHECK_FALSE(certwatch::is_json_name(".json"));
  CHECK_FALSE(certwatch::is_json_name("json"));
  CHECK_FALSE(certwatch::is_json_name("acme.json.tmp"));
  CHECK_FALSE(certwatch::is_json_name("acme.JSON"));
  CHECK_FALSE(certwatch::is_json_name("..data"));
}

}  // TEST_SUITE("file_watch")

// --- ReloadDebouncer -------------------------------------------------------

namespace {

struct Scenario {
  const char* name;
  std::vector<int64_t> changes;   // times a poll reported a change
  std::vector<int64_t> requests;  // SIGHUP / POST /reload times
  int64_t ok_from;                // attempts succeed from this time on (files consistent)
  int64_t until;
  std::vector<int64_t> attempts;  // expected attempt times
};

// A loop that looks every millisecond.
std::vector<int64_t> run_ticks(const Scenario& s, const ReloadDebouncer::Options& o) {
  ReloadDebouncer d(o);
  std::vector<int64_t> attempts;
  size_t ci = 0, ri = 0;
  for (int64_t t = 0; t <= s.until; ++t) {
    for (; ci < s.changes.size() && s.changes[ci] == t; ++ci) d.changed(t);
    for (; ri < s.requests.size() && s.requests[ri] == t; ++ri) d.request_now(t);
    if (d.due(t)) {
      attempts.push_back(t);
      d.attempted(t, t >= s.ok_from);
      CHECK_FALSE(d.due(t));
    }
  }
  return attempts;
}

// A loop that sleeps until the next input or next_deadline(): the way the
// certwatch timer uses it. Must attempt at exactly the same times.
std::vector<int64_t> run_deadlines(const Scenario& s, const ReloadDebouncer::Options& o) {
  ReloadDebouncer d(o);
  std::vector<int64_t> attempts;
  size_t ci = 0, ri = 0;
  int64_t t = 0;
  for (;;) {
    int64_t next = std::numeric_limits<int64_t>::max();
    if (ci < s.changes.size()) next = std::min(next, s.changes[ci]);
    if (ri < s.requests.size()) next = std::min(next, s.requests[ri]);
    if (int64_t dl = d.next_deadline(); dl >= 0) next = std::min(next, std::max(dl, t));
    if (next > s.until) break;
    t = next;
    for (; ci < s.changes.size() && s.changes[ci] == t; ++ci) d.changed(t);
    for (; ri < s.requests.size() && s.requests[ri] == t; ++ri) d.request_now(t);
    if (d.due(t)) {
      attempts.push_back(t);
      d.attempted(t, t >= s.ok_from);
    }
  }
  return attempts;
}

std::vector<int64_t> every(int64_t from, int64_t to, int64_t step) {
  std::vector<int64_t> v;
  for (int64_t t = from; t <= to; t += step) v.push_back(t);
  return v;
}

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

}  // namespace

TEST_SUITE("reload_debouncer") {

TEST_CASE("schedules (fake clock, defaults: quiet 300, max delay 2000, retry 500..30000)") {
  const std::vector<Scenario> table = {
      {"idle", {}, {}, 0, 10000, {}},
      {"one change", {1000}, {}, 0, 10000, {1300}},
      {"burst coalesced into one reload", {1000, 1100, 1200, 1250}, {}, 0, 10000, {1550}},
      {"two bursts far apart", {1000, 5000}, {}, 0, 10000, {1300, 5300}},
      {"endless burst: max delay after first change, then next burst", every(1000, 4000, 100), {}, 0, 10000,
       {3000, 4300}},
      {"cert before key: retried with backoff until consistent", {1000}, {}, 4000, 20000,
       {1300, 1800, 2800, 4800}},
      {"backoff sequence 500,1s,2s,4s,8s,16s,cap 30s", {0}, {}, kNever, 130000,
       {300, 800, 1800, 3800, 7800, 15800, 31800, 61800, 91800, 121800}},
      {"key written later: the new change resets the backoff", {0, 5000}, {}, kNever, 9000,
       {300, 800, 1800, 3800, 5300, 5800, 6800, 8800}},
      {"key arrives: new change, debounced, succeeds", {0, 2000}, {}, 2000, 40000, {300, 800, 1800, 2300}},
      {"request_now is due at once", {}, {1234}, 0, 10000, {1234}},
      {"failed request_now without a file change is not retried", {}, {1234}, kNever, 60000, {1234}},
      {"request_now during a burst covers it", {1000, 1100}, {1150}, 0, 10000, {1150}},
      {"request_now during retry wait; failure keeps backing off", {0}, {1000}, kNever, 8000,
       {300, 800, 1000, 3000, 7000}},
      {"request_now twice before attempt: one attempt", {}, {500, 500}, 0, 10000, {500}},
  };
  for (const auto& s : table) {
    CAPTURE(s.name);
    CHECK(run_ticks(s, {}) == s.attempts);
    CHECK(run_deadlines(s, {}) == s.attempts);
  }
}

TEST_CASE("custom options") {
  ReloadDebouncer::Options o;
  o.quiet_ms = 0;
  o.max_delay_ms = 50;
  o.retry_initial_ms = 100;
  o.retry_max_ms = 250;
  const std::vector<Scenario> table = {
      {"quiet 0: due at the change", {10}, {}, 0, 1000, {10}},
      {"cap below a doubling", {0}, {}, kNever, 1000, {0, 100, 300, 550, 800}},
  };
  for (const auto& s : table) {
    CAPTURE(s.name);
    CHECK(run_ticks(s, o) == s.attempts);
    CHECK(run_deadlines(s, o) == s.attempts);
  }
}

TEST_CASE("deadlines and state, step by step") {
  ReloadDebouncer d;
  CHECK(d.next_deadline() == -1);
  CHECK_FALSE(d.due(0));
  CHECK_FALSE(d.change_pending());

  d.changed(100);
  CHECK(d.change_pending());
  CHECK(d.next_deadline() == 400);
  d.changed(300);
  CHECK(d.next_deadline() == 600);
  CHECK_FALSE(d.due(599));
  CHECK(d.due(600));
  d.attempted(600, false);
  CHECK(d.consecutive_failures() == 1);
  CHECK(d.change_pending());
  CHECK(d.next_deadline() == 1100);
  d.attempted(1100, false);
  CHECK(d.consecutive_failures() == 2);
  CHECK(d.next_deadline() == 2100);

  d.request_now(1500);
  CHECK(d.next_deadline() == 1500);
  CHECK(d.due(1500));
  d.attempted(1500, true);
  CHECK(d.consecutive_failures() == 0);
  CHECK_FALSE(d.change_pending());
  CHECK(d.next_deadline() == -1);
  CHECK_FALSE(d.due(1000000));

  d.request_now(2000);
  d.attempted(2000, false);
  CHECK(d.consecutive_failures() == 1);
  CHECK(d.next_deadline() == -1);  // nothing changed: no retry
}

}  // TEST_SUITE("reload_debouncer")

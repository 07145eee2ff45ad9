// AuditFile and AuditSink under write failures (SPEC §10): a line is in the
// file whole or not at all, the chain advances only over written lines (so
// `audit verify` passes across the failure), lost records are counted and
// reported by one "gap" event once writing works again, and "reject" mode
// raises the refusing flag while failing. The faults are injected through
// AuditFileIo: ENOSPC, a short write, an error after part of the line, and
// a failing ftruncate.
#include <doctest/doctest.h>
#include <picojson.h>

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>
#include <vector>

#include "policy/audit.hpp"
#include "proxy/app/audit_file.hpp"
#include "proxy/app/audit_sink.hpp"
#include "proxy/base/outcome.hpp"
#include "proxy/core/events.hpp"

using namespace fedproxy;
using namespace fedproxy::app;

namespace {

enum class Fault { none, enospc, short_write, partial_then_eio };
Fault g_fault = Fault::none;
bool g_truncate_fails = false;

ssize_t faulty_write(int fd, const void* buf, size_t n) {
  switch (g_fault) {
    case Fault::none: return ::write(fd, buf, n);
    case Fault::enospc: errno = ENOSPC; return -1;
    case Fault::short_write: return ::write(fd, buf, n / 2);  // half the line lands
    case Fault::partial_then_eio:
      if (::write(fd, buf, n / 3) < 0) return -1;
      errno = EIO;
      return -1;
  }
  return -1;
}

int faulty_ftruncate(int fd, off_t length) {
  if (g_truncate_fails) {
    errno = EIO;
    return -1;
  }
  return ::ftruncate(fd, length);
}

const AuditFileIo kFaulty{faulty_write, faulty_ftruncate};

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/fedproxy-audit-test-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
    g_fault = Fault::none;
    g_truncate_fails = false;
  }
  ~TempDir() {
    g_fault = Fault::none;
    g_truncate_fails = false;
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  std::string file(const char* name) const { return path + "/" + name; }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<picojson::object> parse_all(const std::string& text) {
  std::vector<picojson::object> out;
  REQUIRE((text.empty() || text.back() == '\n'));
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    picojson::value v;
    std::string err = picojson::parse(v, line);
    REQUIRE_MESSAGE(err.empty(), line);
    REQUIRE(v.is<picojson::object>());
    out.push_back(v.get<picojson::object>());
  }
  return out;
}

void check_verifies(const std::string& text) {
  std::istringstream in(text);
  auto res = policy::verify_audit_log(in);
  CHECK_MESSAGE(res.ok, res.error);
}

std::string str(const picojson::object& o, const char* key) {
  auto it = o.find(key);
  return it != o.end() && it->second.is<std::string>() ? it->second.get<std::string>() : "";
}

// A sink on `path` over the faulty I/O seam (no fault armed yet).
std::unique_ptr<AuditSink> open_sink(const std::string& path, AuditSink::OnFailure mode) {
  std::string error;
  auto sink = AuditSink::open(path, mode, &error, kFaulty);
  REQUIRE_MESSAGE(sink, error);
  return sink;
}

void send(AuditSink& sink, const std::string& id, base::Outcome outcome = base::Outcome::completed) {
  core::RequestRecord r;
  r.request_id = id;
  r.method = "GET";
  r.target = "/api/v1/tasks?x=1";
  r.status = 200;
  r.decision = base::Decision::allow;
  r.outcome = outcome;
  sink.request(r);
}

}  // namespace

TEST_CASE("AuditFile: a failed, short or partly written line leaves nothing behind") {
  TempDir dir;
  const std::string path = dir.file("a.jsonl");
  AuditFile f(kFaulty);
  std::string last, error;
  REQUIRE(f.open(path, &last, &error));
  CHECK(last.empty());
  REQUIRE(f.append("{\"n\":1}\n", &error));

  for (Fault fault : {Fault::enospc, Fault::short_write, Fault::partial_then_eio}) {
    CAPTURE(static_cast<int>(fault));
    g_fault = fault;
    error.clear();
    CHECK_FALSE(f.append("{\"n\":2,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}\n", &error));
    CHECK_FALSE(error.empty());
    CHECK(slurp(path) == "{\"n\":1}\n");
  }
  g_fault = Fault::short_write;
  CHECK_FALSE(f.append("{\"n\":2,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}\n", &error));
  CHECK(error.find("short write") == 0);
  g_fault = Fault::enospc;
  CHECK_FALSE(f.append("{\"n\":2}\n", &error));
  CHECK(error == "No space left on device");

  g_fault = Fault::none;
  REQUIRE(f.append("{\"n\":3}\n", &error));
  CHECK(slurp(path) == "{\"n\":1}\n{\"n\":3}\n");
}

TEST_CASE("AuditFile: a cut that fails is done before the next line") {
  TempDir dir;
  const std::string path = dir.file("a.jsonl");
  AuditFile f(kFaulty);
  std::string last, error;
  REQUIRE(f.open(path, &last, &error));
  REQUIRE(f.append("{\"n\":1}\n", &error));
  g_fault = Fault::short_write;
  g_truncate_fails = true;
  CHECK_FALSE(f.append("{\"n\":2,\"pad\":\"yyyyyyyyyyyy\"}\n", &error));
  CHECK(error.find("cannot cut back") != std::string::npos);
  CHECK(slurp(path).size() > std::string("{\"n\":1}\n").size());  // the partial line is still there

  // Still failing to cut: the next line is not appended after the fragment.
  g_fault = Fault::none;
  CHECK_FALSE(f.append("{\"n\":3}\n", &error));
  CHECK(error.find("cannot cut back") != std::string::npos);

  g_truncate_fails = false;
  REQUIRE(f.append("{\"n\":4}\n", &error));
  CHECK(slurp(path) == "{\"n\":1}\n{\"n\":4}\n");
}

TEST_CASE("AuditFile: opening a file whose last line was cut by a crash ends that line") {
  TempDir dir;
  const std::string path = dir.file("a.jsonl");
  {
    std::ofstream out(path, std::ios::binary);
    out << "{\"a\":1}\n{\"b\":";
  }
  AuditFile f;
  std::string last, error;
  REQUIRE(f.open(path, &last, &error));
  CHECK(last == "{\"b\":");
  CHECK(slurp(path) == "{\"a\":1}\n{\"b\":\n");
}

TEST_CASE("AuditSink continue: records are lost while failing, one gap event counts them, verify passes") {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  auto sink = open_sink(path, AuditSink::OnFailure::continue_);
  sink->event("start", {{"node", "n"}});
  send(*sink, "r1");
  const std::string head_before = sink->chain_head();
  CHECK_FALSE(sink->health().failing);

  g_fault = Fault::short_write;
  send(*sink, "lost1", base::Outcome::client_aborted);
  g_fault = Fault::enospc;
  send(*sink, "lost2");
  sink->event("reload", {{"result", "success"}});
  AuditSink::Health h = sink->health();
  CHECK(h.failing);
  CHECK(h.lost_records == 3);
  CHECK(h.lost_pending == 3);
  CHECK(h.write_failures == 3);
  CHECK(h.last_error == "No space left on device");
  CHECK_FALSE(h.failing_since.empty());
  const std::string since = h.failing_since;
  CHECK_FALSE(sink->refusing().load());  // continue: requests are served
  CHECK(sink->chain_head() == head_before);

  sink->retry();  // still full: the gap cannot be written either
  CHECK(sink->health().write_failures == 4);
  CHECK(sink->health().lost_records == 3);

  g_fault = Fault::none;
  send(*sink, "r2", base::Outcome::upstream_timeout);
  h = sink->health();
  CHECK_FALSE(h.failing);
  CHECK(h.lost_records == 3);
  CHECK(h.lost_pending == 0);

  const std::string text = slurp(path);
  check_verifies(text);
  auto lines = parse_all(text);
  REQUIRE(lines.size() == 4);
  CHECK(str(lines[0], "event") == "start");
  CHECK(str(lines[1], "request_id") == "r1");
  CHECK(str(lines[1], "outcome") == "completed");
  CHECK(str(lines[2], "event") == "gap");
  CHECK(lines[2].at("lost").get<double>() == 3);
  CHECK(str(lines[2], "since") == since);
  CHECK(str(lines[2], "error") == "No space left on device");
  CHECK(str(lines[3], "request_id") == "r2");
  CHECK(str(lines[3], "outcome") == "upstream_timeout");
  CHECK(text.find("lost1") == std::string::npos);
}

TEST_CASE("AuditSink reject: refusing while failing, retry() recovers without traffic") {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  auto sink = open_sink(path, AuditSink::OnFailure::reject);
  send(*sink, "r1");
  CHECK_FALSE(sink->refusing().load());

  g_fault = Fault::partial_then_eio;
  send(*sink, "lost1");
  CHECK(sink->refusing().load());
  CHECK(sink->health().last_error == std::strerror(EIO));

  // Switching the policy at a reload takes effect while failing.
  sink->set_on_failure(AuditSink::OnFailure::continue_);
  CHECK_FALSE(sink->refusing().load());
  sink->set_on_failure(AuditSink::OnFailure::reject);
  CHECK(sink->refusing().load());

  sink->retry();
  CHECK(sink->refusing().load());
  g_fault = Fault::none;
  sink->retry();
  CHECK_FALSE(sink->refusing().load());
  CHECK_FALSE(sink->health().failing);
  sink->retry();  // nothing pending: no second gap

  const std::string text = slurp(path);
  check_verifies(text);
  auto lines = parse_all(text);
  REQUIRE(lines.size() == 2);
  CHECK(str(lines[1], "event") == "gap");
  CHECK(lines[1].at("lost").get<double>() == 1);
}

TEST_CASE("AuditSink: a reopened file continues the chain of what was written") {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  {
    auto sink = open_sink(path, AuditSink::OnFailure::reject);
    send(*sink, "r1");
    g_fault = Fault::short_write;
    send(*sink, "lost");
    g_fault = Fault::none;
  }
  // A restart after a failure: the chain continues from the last whole line.
  auto sink = open_sink(path, AuditSink::OnFailure::reject);
  send(*sink, "r2");
  check_verifies(slurp(path));
  CHECK(parse_all(slurp(path)).size() == 2);
}

TEST_CASE("AuditSink: rotation while failing: the new file starts with audit.reopened, then the gap") {
  TempDir dir;
  const std::string path = dir.file("audit.jsonl");
  std::string error;
  auto sink = open_sink(path, AuditSink::OnFailure::reject);
  send(*sink, "r1");
  g_fault = Fault::enospc;
  send(*sink, "lost1");
  send(*sink, "lost2");
  REQUIRE(sink->refusing().load());

  const std::string rotated = dir.file("audit.jsonl.1");
  REQUIRE(std::rename(path.c_str(), rotated.c_str()) == 0);
  g_fault = Fault::none;
  REQUIRE(sink->reopen(&error));
  CHECK_FALSE(sink->refusing().load());
  send(*sink, "r2");

  check_verifies(slurp(rotated));
  const std::string text = slurp(path);
  check_verifies(text);
  auto lines = parse_all(text);
  REQUIRE(lines.size() == 3);
  CHECK(str(lines[0], "event") == "audit.reopened");
  CHECK(str(lines[1], "event") == "gap");
  CHECK(lines[1].at("lost").get<double>() == 2);
  CHECK(str(lines[2], "request_id") == "r2");
}

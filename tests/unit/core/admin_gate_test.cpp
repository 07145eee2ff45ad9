// The admin gate (SPEC §10 "Admin authentication") as a pure function:
// endpoint × method × Host × Origin × token → status, and its order.

#include "proxy/core/admin_gate.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

using namespace fedproxy;
using core::AdminAccess;
using core::AdminLocalAddress;
using core::AdminVerdict;

namespace {

const std::string kOps = "0123456789abcdef0123456789abcdef";
const std::string kCi = "ci-token-with-base64+/chars==";

AdminAccess with_tokens() {
  AdminAccess a;
  a.tokens.push_back({"ops", core::admin_token_digest(kOps)});
  a.tokens.push_back({"ci", core::admin_token_digest(kCi)});
  return a;
}

const AdminLocalAddress kLoopback{false, "127.0.0.1", 9901};

// One request, built by chained setters: Req().method("POST").target("/reload").
struct Req {
  std::string method_ = "GET";
  std::string target_ = "/status";
  std::optional<std::string> host_ = "127.0.0.1:9901";
  std::optional<std::string> origin_;
  std::optional<std::string> authorization_;
  int version_minor_ = 1;
  Req& method(std::string v) { method_ = std::move(v); return *this; }
  Req& target(std::string v) { target_ = std::move(v); return *this; }
  Req& host(std::optional<std::string> v) { host_ = std::move(v); return *this; }
  Req& origin(std::optional<std::string> v) { origin_ = std::move(v); return *this; }
  Req& authorization(std::optional<std::string> v) { authorization_ = std::move(v); return *this; }
  Req& http10() { version_minor_ = 0; return *this; }
};

AdminVerdict check(const Req& r, const AdminAccess& access, const AdminLocalAddress& local = kLoopback) {
  http1::Headers headers;
  if (r.host_) headers.push_back({"Host", *r.host_});
  if (r.origin_) headers.push_back({"Origin", *r.origin_});
  if (r.authorization_) headers.push_back({"Authorization", *r.authorization_});
  return core::check_admin_request({r.method_, r.target_, r.version_minor_, headers, local}, access);
}

std::string bearer(const std::string& t) { return "Bearer " + t; }

}  // namespace

TEST_CASE("without tokens every endpoint is open, but Host and Origin still count") {
  const AdminAccess open;
  for (const char* path : {"/status", "/reload", "/healthz", "/nope"}) {
    CAPTURE(path);
    CHECK(check(Req().target(path), open).status == 0);
    CHECK(check(Req().method("POST").target(path), open).status == 0);
    CHECK(check(Req().target(path).host("evil.example:9901"), open).status == 421);
    CHECK(check(Req().method("POST").target(path).origin("http://evil.example"), open).status == 403);
  }
  CHECK(check(Req(), open).actor.empty());
}

TEST_CASE("tokens: every path but the probes needs one; each configured token works") {
  const AdminAccess access = with_tokens();
  struct Case {
    const char* method;
    const char* target;
    std::optional<std::string> authorization;
    int status;
    const char* actor;
  };
  const std::vector<Case> cases = {
      {"GET", "/status", std::nullopt, 401, ""},
      {"POST", "/reload", std::nullopt, 401, ""},
      {"GET", "/nope", std::nullopt, 401, ""},
      {"DELETE", "/v1/peers/x", std::nullopt, 401, ""},
      {"GET", "/status?x=1", std::nullopt, 401, ""},
      {"GET", "/healthz/", std::nullopt, 401, ""},   // not the probe path
      {"GET", "//healthz", std::nullopt, 401, ""},
      {"GET", "/healthz", std::nullopt, 0, ""},
      {"GET", "/readyz", std::nullopt, 0, ""},
      {"GET", "/metrics", std::nullopt, 0, ""},
      {"HEAD", "/metrics?x", std::nullopt, 0, ""},
      {"GET", "/status", bearer(kOps), 0, "ops"},
      {"POST", "/reload", bearer(kOps), 0, "ops"},
      {"POST", "/reload", bearer(kCi), 0, "ci"},
      {"GET", "/status", "bearer " + kOps, 0, "ops"},   // the scheme is case-insensitive
      {"GET", "/status", "BEARER   " + kCi, 0, "ci"},
      {"GET", "/status", bearer(kOps + "0"), 401, ""},  // longer
      {"GET", "/status", bearer(kOps.substr(1)), 401, ""},  // shorter
      {"GET", "/status", bearer(kOps.substr(0, 16)), 401, ""},  // a prefix
      {"GET", "/status", bearer("0123456789ABCDEF0123456789ABCDEF"), 401, ""},  // other case
      {"GET", "/status", bearer(""), 401, ""},
      {"GET", "/status", "Bearer", 401, ""},
      {"GET", "/status", "Basic " + kOps, 401, ""},
      {"GET", "/status", kOps, 401, ""},
      {"GET", "/status", "Bearer" + kOps, 401, ""},
      {"GET", "/status", bearer(kOps + " " + kCi), 401, ""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.method);
    CAPTURE(c.target);
    CAPTURE(c.authorization.value_or("(none)"));
    AdminVerdict v = check(Req().method(c.method).target(c.target).authorization(c.authorization), access);
    CHECK(v.status == c.status);
    CHECK(v.actor == c.actor);
    if (c.status == 401) {
      CHECK(v.code == "unauthorized");
      CHECK(v.extra_headers == "WWW-Authenticate: Bearer\r\n");
    }
  }
}

TEST_CASE("two Authorization headers are refused even when one is right") {
  http1::Headers headers = {{"Host", "127.0.0.1:9901"},
                            {"Authorization", bearer(kOps)},
                            {"authorization", bearer("wrong-token-wrong-token")}};
  CHECK(core::check_admin_request({"GET", "/status", 1, headers, kLoopback}, with_tokens()).status == 401);
}

TEST_CASE("Host: the listener's own address, localhost, or admin.allowed_hosts") {
  AdminAccess access;
  access.allowed_hosts.push_back(*config::parse_host("admin.example.internal"));
  access.allowed_hosts.push_back(*config::parse_host("10.0.0.5:19901"));
  struct Case {
    const char* host;
    int status;
  };
  const std::vector<Case> cases = {
      {"127.0.0.1:9901", 0},
      {"127.0.0.1", 0},          // no port: the name is what matters
      {"localhost:9901", 0},
      {"LOCALHOST:9901", 0},
      {"localhost", 0},
      {"admin.example.internal", 0},
      {"admin.example.internal:1234", 0},  // an entry without port allows any port
      {"Admin.Example.Internal", 0},
      {"10.0.0.5:19901", 0},
      {"10.0.0.5", 421},        // an entry with a port allows that port only
      {"10.0.0.5:9901", 421},
      {"127.0.0.1:9902", 421},  // another port of this host: another service
      {"localhost:80", 421},
      {"evil.example", 421},
      {"evil.example:9901", 421},
      {"127.0.0.1.evil.example", 421},
      {"127.0.0.1.evil.example:9901", 421},
      {"localhost.evil.example:9901", 421},
      {"localhost.:9901", 421},
      {"127.0.0.2:9901", 421},
      {"[::1]:9901", 421},      // not the address this connection reached
      {"127.0.0.1:", 421},
      {"127.0.0.1:0", 421},
      {"127.0.0.1:99999", 421},
      {"user@127.0.0.1:9901", 421},
      {"127.0.0.1:9901/x", 421},
      {"", 421},
      {"[127.0.0.1]:9901", 421},
      {"2130706433:9901", 421},  // 127.0.0.1 as a number is a name here
  };
  for (const auto& c : cases) {
    CAPTURE(c.host);
    AdminVerdict v = check(Req().host(c.host), access);
    CHECK(v.status == c.status);
    if (c.status == 421) CHECK(v.code == "misdirected_request");
  }
}

TEST_CASE("Host on IPv6, wildcard and unix-socket listeners") {
  const AdminAccess open;
  const AdminLocalAddress v6{false, "::1", 9901};
  CHECK(check(Req().host("[::1]:9901"), open, v6).status == 0);
  CHECK(check(Req().host("[0:0:0:0:0:0:0:1]:9901"), open, v6).status == 0);
  CHECK(check(Req().host("[::1]"), open, v6).status == 0);
  CHECK(check(Req().host("::1:9901"), open, v6).status == 421);
  CHECK(check(Req().host("127.0.0.1:9901"), open, v6).status == 421);
  // A wildcard listener answers under the address the client connected to
  // (the kubelet probes the pod IP), seen as IPv4-mapped on a dual-stack socket.
  const AdminLocalAddress pod{false, "10.1.2.3", 9901};
  CHECK(check(Req().host("10.1.2.3:9901"), open, pod).status == 0);
  CHECK(check(Req().host("10.1.2.4:9901"), open, pod).status == 421);
  const AdminLocalAddress mapped{false, "::ffff:127.0.0.1", 9901};
  CHECK(check(Req().host("127.0.0.1:9901"), open, mapped).status == 0);
  // A unix socket has no address: localhost (with whatever port the URL had).
  const AdminLocalAddress sock{true, "", 0};
  CHECK(check(Req().host("localhost"), open, sock).status == 0);
  CHECK(check(Req().host("localhost:9901"), open, sock).status == 0);
  CHECK(check(Req().host("127.0.0.1"), open, sock).status == 421);
  CHECK(check(Req().host("evil.example"), open, sock).status == 421);
}

TEST_CASE("a missing Host: 400 on HTTP/1.1, 421 on HTTP/1.0") {
  const AdminAccess open;
  AdminVerdict v11 = check(Req().host(std::nullopt), open);
  CHECK(v11.status == 400);
  CHECK(v11.code == "bad_request");
  CHECK(check(Req().host(std::nullopt).http10(), open).status == 421);
}

TEST_CASE("only origin-form targets") {
  const AdminAccess open;
  CHECK(check(Req().target("http://127.0.0.1:9901/status"), open).status == 400);
  CHECK(check(Req().target("*").host("127.0.0.1:9901"), open).status == 400);
  CHECK(check(Req().method("OPTIONS").target("*"), open).status == 400);
}

TEST_CASE("Origin: refused on every state-changing method, allowed on GET, HEAD, OPTIONS") {
  const AdminAccess access = with_tokens();
  for (const char* method : {"POST", "PUT", "PATCH", "DELETE", "TRACE", "PROPFIND", "get"}) {
    CAPTURE(method);
    for (const char* origin : {"http://evil.example", "null", "http://127.0.0.1:9901", ""}) {
      CAPTURE(origin);
      AdminVerdict v = check(Req().method(method).target("/reload").origin(origin).authorization(bearer(kOps)),
                             access);
      CHECK(v.status == 403);
      CHECK(v.code == "forbidden_origin");
      // probes are not exempt from it
      CHECK(check(Req().method(method).target("/healthz").origin(origin), access).status == 403);
    }
  }
  for (const char* method : {"GET", "HEAD", "OPTIONS"}) {
    CAPTURE(method);
    CHECK(check(Req().method(method).origin("http://evil.example").authorization(bearer(kCi)), access).status == 0);
  }
}

TEST_CASE("order: target, then Host, then Origin, then token") {
  const AdminAccess access = with_tokens();
  Req all_wrong = Req().method("POST").target("/reload").host("evil.example").origin("http://evil.example");
  CHECK(check(all_wrong, access).status == 421);
  all_wrong.host("localhost:9901");
  CHECK(check(all_wrong, access).status == 403);
  all_wrong.origin(std::nullopt);
  CHECK(check(all_wrong, access).status == 401);
  all_wrong.target("http://localhost:9901/reload");
  all_wrong.host("evil.example");
  CHECK(check(all_wrong, access).status == 400);
}

TEST_CASE("the digest is SHA-256 hex of the token") {
  CHECK(core::admin_token_digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(core::is_open_admin_path("/metrics"));
  CHECK_FALSE(core::is_open_admin_path("/metrics/"));
  CHECK_FALSE(core::is_open_admin_path("/status"));
}

// The ingress session over a real libuv loop on 127.0.0.1:0, plain transport
// (the TLS engine has its own in-memory tests). A tiny scripted backend
// stands in for the local app.
#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "proxy/core/proxy_server.hpp"
#include "proxy/net/listener.hpp"
#include "proxy/net/loop.hpp"

using namespace fedproxy;

namespace {

config::Endpoint endpoint_of(const std::string& addr) {
  std::string err;
  auto ep = config::parse_endpoint(addr, &err);
  REQUIRE_MESSAGE(ep.has_value(), err);
  return *ep;
}

struct RecordingEvents : core::CoreEvents {
  struct Request {  // owned copy: a record's views die with the call
    std::string request_id, method, target;
    int status = 0;
  };
  std::vector<Request> requests;
  std::vector<std::string> events;
  void on_handshake_failed(const std::string&, const std::string& r) override { events.push_back("hs:" + r); }
  void on_request_done(const core::RequestRecord& r) override {
    requests.push_back({std::string(r.request_id), std::string(r.method), std::string(r.target), r.status});
  }
  void on_connection_event(const std::string&, const std::string& what, const std::string&) override {
    events.push_back(what);
  }
};

// Backend: answers each request head (no bodies in these tests) with a body
// naming the request path. Records every raw byte it received.
struct Backend final : net::TransportHandler {
  net::Loop& loop;
  std::unique_ptr<net::Listener> listener;
  std::vector<std::unique_ptr<net::Transport>> conns;
  std::string received;
  std::string pending;
  int accepted = 0;
  explicit Backend(net::Loop& l) : loop(l) {
    auto created = net::Listener::create(loop, endpoint_of("127.0.0.1:0"),
                                         [this](std::unique_ptr<net::Transport> t) {
                                           ++accepted;
                                           t->set_handler(this);
                                           t->start(nullptr);
                                           conns.push_back(std::move(t));
                                         });
    REQUIRE(created.ok());
    listener = std::move(created).value();
  }
  void on_transport_connected() override {}
  void on_transport_data(const char* d, size_t n) override {
    received.append(d, n);
    pending.append(d, n);
    size_t end;
    while ((end = pending.find("\r\n\r\n")) != std::string::npos) {
      std::string head = pending.substr(0, end);
      pending.erase(0, end + 4);
      size_t sp1 = head.find(' '), sp2 = head.find(' ', sp1 + 1);
      std::string path = head.substr(sp1 + 1, sp2 - sp1 - 1);
      std::string resp = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(path.size()) + "\r\n\r\n" + path;
      conns.back()->write(resp);
    }
  }
  void on_transport_eof() override {}
  void on_transport_error(const std::string&) override {}
  void on_transport_drained() override {}
};

// Client: connects, writes a script, collects everything.
struct Client : net::TransportHandler {
  std::unique_ptr<net::Transport> t;
  std::string got;
  bool eof = false, connected = false;
  Client(net::Loop& loop, const std::string& addr) {
    std::string err;
    t = net::Transport::connect(loop, endpoint_of(addr), this, nullptr, &err);
    REQUIRE(t);
  }
  void on_transport_connected() override { connected = true; }
  void on_transport_data(const char* d, size_t n) override { got.append(d, n); }
  void on_transport_eof() override { eof = true; }
  void on_transport_error(const std::string&) override { eof = true; }
  void on_transport_drained() override {}
};

struct Fixture {
  net::Loop loop;
  RecordingEvents events;
  core::PassThroughAuthorizer authorizer;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<core::ProxyServer> server;

  explicit Fixture(bool with_backend = true, const std::function<void(core::ProxyOptions&)>& tweak = {}) {
    core::ProxyOptions opts;
    opts.header_timeout_ms = 300;
    opts.upstream.connect_timeout_ms = 1000;
    opts.upstream.response_timeout_ms = 1000;
    if (with_backend) {
      backend = std::make_unique<Backend>(loop);
      opts.upstream.endpoint = endpoint_of(backend->listener->bound_address());
    } else {
      opts.upstream.endpoint = endpoint_of("127.0.0.1:1");  // nothing listens on port 1
    }
    if (tweak) tweak(opts);
    server = std::make_unique<core::ProxyServer>(loop, opts, nullptr, authorizer, events);
    std::string err;
    REQUIRE_MESSAGE(server->listen(endpoint_of("127.0.0.1:0"), &err), err);
  }

  void run_until(const std::function<bool()>& done, int max_iterations = 2000) {
    for (int i = 0; i < max_iterations && !done(); ++i) loop.run_once(false), usleep_ms();
  }
  static void usleep_ms() {
    struct timespec ts{0, 1000000};
    nanosleep(&ts, nullptr);
  }

  // Shut everything down and prove no handle leaked.
  int teardown() {
    server->close_all();
    server.reset();
    backend.reset();
    return loop.close_now();
  }
};

size_t count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("pipelined requests are answered in order over one upstream connection") {
  Fixture f;
  {
    Client c(f.loop, f.server->bound_address());
    c.t->write(std::string("GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
                           "GET /two HTTP/1.1\r\nHost: a\r\n\r\n"
                           "GET /three HTTP/1.1\r\nHost: a\r\n\r\n"));
    f.run_until([&] { return count(c.got, "HTTP/1.1 200") == 3; });
    REQUIRE(count(c.got, "HTTP/1.1 200") == 3);
    size_t p1 = c.got.find("/one"), p2 = c.got.find("/two"), p3 = c.got.find("/three");
    CHECK(p1 < p2);
    CHECK(p2 < p3);
    CHECK(f.backend->accepted == 1);  // keep-alive reuse of the pooled connection
    CHECK(f.events.requests.size() == 3);
  }
  CHECK(f.teardown() == 0);
}

TEST_CASE("a request written one byte at a time is forwarded intact") {
  Fixture f;
  {
    Client c(f.loop, f.server->bound_address());
    f.run_until([&] { return c.connected; });
    std::string req = "GET /slow-but-fine HTTP/1.1\r\nHost: a\r\nX-Test: 1\r\n\r\n";
    for (char ch : req) {
      c.t->write(&ch, 1);
      f.loop.run_once(false);
    }
    f.run_until([&] { return c.got.find("/slow-but-fine") != std::string::npos; });
    CHECK(c.got.find("HTTP/1.1 200 OK") == 0);
    CHECK(f.backend->received.find("X-Test: 1\r\n") != std::string::npos);
  }
  CHECK(f.teardown() == 0);
}

TEST_CASE("a smuggling attempt gets a JSON 400, closes, and never reaches the app") {
  Fixture f;
  {
    Client c(f.loop, f.server->bound_address());
    c.t->write(std::string("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                           "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"));
    f.run_until([&] { return c.eof; });
    CHECK(c.got.find("HTTP/1.1 400") == 0);
    CHECK(c.got.find("\"error\":\"bad_request\"") != std::string::npos);
    CHECK(c.got.find("Content-Type: application/json") != std::string::npos);
    CHECK(c.eof);
    CHECK(f.backend->received.empty());
  }
  CHECK(f.teardown() == 0);
}

TEST_CASE("hop-by-hop and spoofed identity headers are not forwarded") {
  Fixture f;
  {
    Client c(f.loop, f.server->bound_address());
    c.t->write(std::string("GET /h HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\n"
                           "Keep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Authorization: x\r\n"
                           "X-Federation-Peer: evil\r\nX-Forwarded-Client-Cert: Hash=00\r\nX-Keep: yes\r\n\r\n"));
    f.run_until([&] { return c.got.find("/h") != std::string::npos; });
    const std::string& r = f.backend->received;
    CHECK(r.find("X-Keep: yes") != std::string::npos);
    CHECK(r.find("X-Secret") == std::string::npos);
    CHECK(r.find("Keep-Alive:") == std::string::npos);
    CHECK(r.find("TE:") == std::string::npos);
    CHECK(r.find("Proxy-Authorization") == std::string::npos);
    CHECK(r.find("evil") == std::string::npos);
    CHECK(r.find("Hash=00") == std::string::npos);
    CHECK(r.find("X-Request-Id: ") != std::string::npos);
  }
  CHECK(f.teardown() == 0);
}

TEST_CASE("dead upstream gives 502 upstream_unavailable") {
  Fixture f(false);
  {
    Client c(f.loop, f.server->bound_address());
    c.t->write(std::string("GET /x HTTP/1.1\r\nHost: a\r\nX-Request-Id: abc-123\r\n\r\n"));
    f.run_until([&] { return c.got.find("\r\n\r\n{") != std::string::npos; });
    CHECK(c.got.find("HTTP/1.1 502") == 0);
    CHECK(c.got.find("\"error\":\"upstream_unavailable\"") != std::string::npos);
    CHECK(c.got.find("\"request_id\":\"abc-123\"") != std::string::npos);
  }
  CHECK(f.teardown() == 0);
}

TEST_CASE("an incomplete request head is closed after header_ms (slowloris)") {
  Fixture f;
  {
    Client c(f.loop, f.server->bound_address());
    c.t->write(std::string("GET /x HTTP/1.1\r\nHost: a\r\n"));
    f.run_until([&] { return c.eof; }, 3000);
    CHECK(c.eof);
    CHECK(f.backend->received.empty());
    bool logged = false;
    for (auto& e : f.events.events) logged |= e == "header_timeout";
    CHECK(logged);
  }
  CHECK(f.teardown() == 0);
}

TEST_CASE("an HTTP/1.1 request without Host is refused; HTTP/1.0 without Host is fine") {
  Fixture f;
  {
    Client c10(f.loop, f.server->bound_address());
    c10.t->write(std::string("GET /old HTTP/1.0\r\n\r\n"));
    f.run_until([&] { return c10.eof; });
    CHECK(c10.got.find("HTTP/1.1 200") == 0);
    CHECK(c10.got.find("Connection: close") != std::string::npos);

    Client c11(f.loop, f.server->bound_address());
    c11.t->write(std::string("GET /nohost HTTP/1.1\r\n\r\n"));
    f.run_until([&] { return c11.eof; });
    CHECK(c11.got.find("HTTP/1.1 400") == 0);
    CHECK(f.backend->received.find("/nohost") == std::string::npos);
  }
  CHECK(f.teardown() == 0);
}

TEST_CASE("over max_connections a new connection is closed at once; others keep working") {
  Fixture f(true, [](core::ProxyOptions& o) { o.max_connections = 1; });
  {
    Client first(f.loop, f.server->bound_address());
    f.run_until([&] { return f.server->active_sessions() == 1; });
    Client second(f.loop, f.server->bound_address());
    f.run_until([&] { return second.eof; });
    CHECK(second.eof);
    CHECK(f.server->rejected_over_limit() == 1);
    first.t->write(std::string("GET /still-fine HTTP/1.1\r\nHost: a\r\n\r\n"));
    f.run_until([&] { return first.got.find("/still-fine") != std::string::npos; });
    CHECK(first.got.find("HTTP/1.1 200") == 0);
  }
  CHECK(f.teardown() == 0);
}

TEST_CASE("max_conn_lifetime_ms closes a connection at its next request boundary") {
  Fixture f(true, [](core::ProxyOptions& o) { o.max_conn_lifetime_ms = 50; });
  {
    Client c(f.loop, f.server->bound_address());
    c.t->write(std::string("GET /young HTTP/1.1\r\nHost: a\r\n\r\n"));
    f.run_until([&] { return c.got.find("/young") != std::string::npos; });
    CHECK(c.got.find("Connection: keep-alive") != std::string::npos);
    CHECK_FALSE(c.eof);
    f.run_until([] { return false; }, 80);  // let the connection age past 50 ms
    c.t->write(std::string("GET /old HTTP/1.1\r\nHost: a\r\n\r\n"));
    f.run_until([&] { return c.eof; });
    CHECK(c.got.find("/old") != std::string::npos);  // answered, not cut
    CHECK(c.got.find("Connection: close") != std::string::npos);
    CHECK(c.eof);
  }
  CHECK(f.teardown() == 0);
}

namespace {
// Routes every request to a dead endpoint first, the live one as fallback
// (what EgressRouter does with a peer's manifest endpoints).
struct FailoverAuthorizer : core::Authorizer {
  core::UpstreamPool* dead = nullptr;
  core::UpstreamPool* live = nullptr;
  core::Verdict authorize(const core::RequestView&) override {
    core::Verdict v;
    v.pool = dead;
    v.fallbacks = {live};
    return v;
  }
};
}  // namespace

TEST_CASE("a failed connect fails over to the next endpoint within the same request") {
  Fixture f;
  {
    core::UpstreamOptions dead_opts;
    dead_opts.endpoint = endpoint_of("127.0.0.1:1");
    core::UpstreamOptions live_opts;
    live_opts.endpoint = endpoint_of(f.backend->listener->bound_address());
    core::UpstreamPool dead(f.loop, dead_opts), live(f.loop, live_opts);
    FailoverAuthorizer auth;
    auth.dead = &dead;
    auth.live = &live;
    f.server->set_authorizer(auth);
    Client c(f.loop, f.server->bound_address());
    c.t->write(std::string("GET /failover HTTP/1.1\r\nHost: a\r\n\r\n"));
    f.run_until([&] { return c.got.find("/failover") != std::string::npos; });
    CHECK(c.got.find("HTTP/1.1 200") == 0);
    CHECK(dead.last_connect_failure_ms() != 0);
    f.server->close_all();
    dead.close_idle(true);
    live.close_idle(true);
    f.run_until([] { return false; }, 20);
  }
  CHECK(f.teardown() == 0);
}

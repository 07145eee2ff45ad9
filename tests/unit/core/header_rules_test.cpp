// Header hygiene (SPEC §5): which peer header sections are refused, what is
// stripped before the app sees it, and the forwarding lines written instead.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "proxy/core/header_rules.hpp"

using namespace fedproxy;
using core::UnderscoreHeaders;

namespace {

http1::Headers headers_of(std::vector<std::pair<std::string, std::string>> fields) {
  http1::Headers h;
  for (auto& [n, v] : fields) h.push_back({n, v});
  return h;
}

std::string names(const http1::Headers& h) {
  std::string s;
  for (const auto& f : h) s += (s.empty() ? "" : ",") + f.name;
  return s;
}

}  // namespace

TEST_CASE("check_peer_headers: table") {
  struct Case {
    const char* what;
    std::vector<std::pair<std::string, std::string>> fields;
    UnderscoreHeaders underscores;
    bool refused;
    const char* kept;  // header names left when accepted
  };
  const std::vector<Case> cases = {
      {"ordinary", {{"Host", "a"}, {"Accept", "*/*"}}, UnderscoreHeaders::reject, false, "Host,Accept"},
      {"one Authorization", {{"Authorization", "Bearer x"}}, UnderscoreHeaders::reject, false, "Authorization"},
      {"two Authorization", {{"Authorization", "Bearer fg-1"}, {"authorization", "Basic eA=="}},
       UnderscoreHeaders::reject, true, ""},
      {"two Authorization, same value", {{"Authorization", "a"}, {"Authorization", "a"}},
       UnderscoreHeaders::allow, true, ""},
      // underscores (WSGI/CGI: X_Federation_Peer == X-Federation-Peer)
      {"underscore, reject", {{"X_Federation_Peer", "acme"}}, UnderscoreHeaders::reject, true, ""},
      {"underscore anywhere, reject", {{"x-federation_peer", "acme"}}, UnderscoreHeaders::reject, true, ""},
      {"leading underscore, reject", {{"_method", "DELETE"}}, UnderscoreHeaders::reject, true, ""},
      {"underscore, drop", {{"Host", "a"}, {"X_Federation_Peer", "acme"}, {"X_Other", "1"}},
       UnderscoreHeaders::drop, false, "Host"},
      {"underscore, allow", {{"X_Custom", "1"}}, UnderscoreHeaders::allow, false, "X_Custom"},
      {"duplicate Authorization wins over drop", {{"Authorization", "a"}, {"Authorization", "b"}, {"A_B", "1"}},
       UnderscoreHeaders::drop, true, ""},
      // Connection naming fields that must reach the app
      {"Connection: close", {{"Connection", "close"}}, UnderscoreHeaders::reject, false, "Connection"},
      {"Connection: keep-alive, X-Foo", {{"Connection", "keep-alive, X-Foo"}}, UnderscoreHeaders::reject, false,
       "Connection"},
      {"Connection: Host", {{"Connection", "Host"}}, UnderscoreHeaders::reject, true, ""},
      {"Connection: close, host", {{"Connection", "close, host"}}, UnderscoreHeaders::reject, true, ""},
      {"Connection: content-length", {{"Connection", "Content-Length"}}, UnderscoreHeaders::reject, true, ""},
      {"Connection: transfer-encoding", {{"Connection", "  Transfer-Encoding\t"}}, UnderscoreHeaders::reject,
       true, ""},
      {"Connection: Authorization", {{"Connection", "x,Authorization"}}, UnderscoreHeaders::reject, true, ""},
      {"Connection: X-Request-Id", {{"Connection", "X-Request-ID"}}, UnderscoreHeaders::reject, true, ""},
      {"Connection: X-Federation-Grant", {{"Connection", "X-Federation-Grant"}}, UnderscoreHeaders::reject, true,
       ""},
      {"second Connection field names Host", {{"Connection", "close"}, {"connection", "HOST"}},
       UnderscoreHeaders::reject, true, ""},
      {"Connection: Hostname (not Host)", {{"Connection", "Hostname"}}, UnderscoreHeaders::reject, false,
       "Connection"},
      {"Connection: empty tokens", {{"Connection", ",,"}}, UnderscoreHeaders::reject, false, "Connection"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    http1::Headers h = headers_of(c.fields);
    const char* why = core::check_peer_headers(h, c.underscores);
    CHECK((why != nullptr) == c.refused);
    if (!c.refused) CHECK(names(h) == c.kept);
  }
}

TEST_CASE("strip_peer_asserted_headers removes identity, forwarding and URL-override fields") {
  http1::Headers h = headers_of({{"Host", "a"},
                                 {"X-Federation-Peer", "acme"},
                                 {"x-federation-anything", "1"},
                                 {"X-Forwarded-Client-Cert", "Hash=1"},
                                 {"Client-Cert", ":x:"},
                                 {"Client-Cert-Chain", ":x:"},
                                 {"X-Forwarded-For", "10.0.0.1"},
                                 {"X-Forwarded-Proto", "http"},
                                 {"X-Forwarded-Host", "evil"},
                                 {"X-Forwarded-Prefix", "/admin"},
                                 {"Forwarded", "for=1.2.3.4"},
                                 {"X-Real-IP", "1.2.3.4"},
                                 {"X-Client-IP", "1.2.3.4"},
                                 {"True-Client-IP", "1.2.3.4"},
                                 {"X-Original-URL", "/admin"},
                                 {"X-Rewrite-URL", "/admin"},
                                 {"X-Forwarded", "not a prefix match"},
                                 {"Accept", "*/*"},
                                 {"X-Federationist", "kept: not the X-Federation- prefix"},
                                 {"X_Federation_Peer", "read as X-Federation-Peer by WSGI"},
                                 {"x_forwarded_for", "1.2.3.4"},
                                 {"X_Custom", "kept"}});
  core::strip_peer_asserted_headers(h);
  CHECK(names(h) == "Host,X-Forwarded,Accept,X-Federationist,X_Custom");
}

TEST_CASE("append_forwarding_lines: IPv4, IPv6, scheme") {
  std::string v4;
  core::append_forwarding_lines(v4, "10.1.2.3", true);
  CHECK(v4 ==
        "X-Forwarded-For: 10.1.2.3\r\nX-Forwarded-Proto: https\r\nForwarded: for=10.1.2.3;proto=https\r\n");
  std::string v6;
  core::append_forwarding_lines(v6, "2001:db8::1", false);
  CHECK(v6 == "X-Forwarded-For: 2001:db8::1\r\nX-Forwarded-Proto: http\r\n"
              "Forwarded: for=\"[2001:db8::1]\";proto=http\r\n");
}

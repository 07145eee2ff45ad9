// endpoint_from_url: syntax only. A host name stays a name (resolved at
// connect time, off the loop); an IP literal stays literal; nothing is looked up.
#include <doctest/doctest.h>

#include <string>

#include "proxy/net/address.hpp"

using fedproxy::net::endpoint_from_url;
using fedproxy::net::is_ip_literal;

TEST_CASE("endpoint_from_url keeps host names and literals without a lookup") {
  struct Good {
    const char* url;
    const char* host;
    int port;
    const char* text;
    const char* host_header;
  };
  const Good goods[] = {
      {"https://Partner-Labs.Example:8443", "partner-labs.example", 8443, "partner-labs.example:8443",
       "Partner-Labs.Example:8443"},
      {"https://peer.invalid", "peer.invalid", 443, "peer.invalid:443", "peer.invalid"},
      {"https://192.0.2.7:9443/", "192.0.2.7", 9443, "192.0.2.7:9443", "192.0.2.7:9443"},
      {"https://[2001:db8::1]:8443", "2001:db8::1", 8443, "[2001:db8::1]:8443", "[2001:db8::1]:8443"},
      {"https://localhost:8443", "localhost", 8443, "localhost:8443", "localhost:8443"},
  };
  for (const auto& g : goods) {
    CAPTURE(g.url);
    std::string error, host_header;
    auto ep = endpoint_from_url(g.url, &host_header, &error);
    REQUIRE_MESSAGE(ep.has_value(), error);
    CHECK(ep->host == g.host);
    CHECK(ep->port == g.port);
    CHECK(ep->text == g.text);
    CHECK(host_header == g.host_header);
  }
  const char* bads[] = {"http://peer.example", "https://", "https://:8443", "https://peer.example:0",
                        "https://peer.example:99999", "https://peer.example:x", "https://pe er.example",
                        "https://[2001:db8::1:8443"};
  for (const char* b : bads) {
    CAPTURE(b);
    std::string error, host_header;
    CHECK_FALSE(endpoint_from_url(b, &host_header, &error).has_value());
    CHECK_FALSE(error.empty());
  }
}

TEST_CASE("is_ip_literal") {
  CHECK(is_ip_literal("127.0.0.1"));
  CHECK(is_ip_literal("::1"));
  CHECK(is_ip_literal("localhost"));
  CHECK_FALSE(is_ip_literal("peer.example"));
  CHECK_FALSE(is_ip_literal("1.2.3"));
  CHECK_FALSE(is_ip_literal(""));
}

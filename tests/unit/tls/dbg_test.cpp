#include <doctest/doctest.h>
#include "tests/unit/tls/tls_env.hpp"
using namespace fedproxy; using namespace fedproxy::testing;
TEST_CASE("dbg") {
  TlsEnv env;
  tls::TlsEngine server(env.server_ctx());
  tls::TlsEngine client(env.client_ctx());
  TlsPair pair(client, server);
  REQUIRE(pair.handshake());
  MESSAGE("server out pending " << server.output_size());
  pair.flush();
  MESSAGE("client status " << int(pair.client_status) << " reason " << client.error_reason());
  auto st = client.write("secret", 6);
  MESSAGE("write " << int(st) << " reason " << client.error_reason());
  mbedtls_ssl_session s; mbedtls_ssl_session_init(&s);
  MESSAGE("save " << client.save_session(&s));
  mbedtls_ssl_session_free(&s);
}

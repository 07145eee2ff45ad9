// Session tickets: resumption keeps the peer identity; tampered or foreign
// tickets fall back to a full handshake.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <mbedtls/ssl.h>

#include "proxy/tls/ticket_sealer.hpp"
#include "tests/unit/tls/tls_env.hpp"

using namespace fedproxy;
using namespace fedproxy::testing;
using Status = tls::TlsEngine::Status;

namespace {

struct Session {
  mbedtls_ssl_session s;
  Session() { mbedtls_ssl_session_init(&s); }
  ~Session() { mbedtls_ssl_session_free(&s); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
};

// One connection: handshake, a request, the server's ticket to the client.
// Returns false if the handshake failed.
bool connect(std::shared_ptr<const tls::TlsContext> sctx, std::shared_ptr<const tls::TlsContext> cctx,
             const mbedtls_ssl_session* offer, Session* save, tls::PeerIdentity* server_saw,
             bool* server_resumed, bool* client_resumed = nullptr, tls::PeerIdentity* client_saw = nullptr) {
  tls::TlsEngine server(std::move(sctx));
  tls::TlsEngine client(std::move(cctx));
  if (offer != nullptr) client.set_session(offer);
  TlsPair pair(client, server);
  if (!pair.handshake()) return false;
  REQUIRE(client.write("GET /x HTTP/1.1\r\n\r\n", 19) == Status::ok);
  pair.flush();
  CHECK(pair.server_received == "GET /x HTTP/1.1\r\n\r\n");
  if (save != nullptr) CHECK(client.save_session(&save->s));
  if (server_saw != nullptr) *server_saw = server.peer();
  if (server_resumed != nullptr) *server_resumed = server.resumed();
  if (client_resumed != nullptr) *client_resumed = client.resumed();
  if (client_saw != nullptr) *client_saw = client.peer();
  return true;
}

tls::PeerIdentity identity_of_ca(const TlsEnv& env) {
  mbedtls_x509_crt crt;
  mbedtls_x509_crt_init(&crt);
  const std::string& pem = env.ca.cert_pem();
  REQUIRE(mbedtls_x509_crt_parse(&crt, reinterpret_cast<const unsigned char*>(pem.c_str()), pem.size() + 1) == 0);
  tls::PeerIdentity id = tls::identity_from_cert(crt);
  mbedtls_x509_crt_free(&crt);
  return id;
}

void check_same_identity(const tls::PeerIdentity& a, const tls::PeerIdentity& b) {
  CHECK(a.present);
  CHECK(b.present);
  CHECK(a.uri_sans == b.uri_sans);
  CHECK(a.der_sha256 == b.der_sha256);
  CHECK(a.spki_sha256 == b.spki_sha256);
  CHECK(a.grant_id == b.grant_id);
  CHECK(a.subject == b.subject);
  CHECK(a.not_after == b.not_after);
}

}  // namespace

TEST_CASE("resumption keeps the client identity of the original handshake") {
  TlsEnv env;
  auto sctx = env.server_ctx();
  auto cctx = env.client_ctx();
  Session first;
  tls::PeerIdentity original, client_view_1;
  bool resumed = true, client_resumed = true;
  REQUIRE(connect(sctx, cctx, nullptr, &first, &original, &resumed, &client_resumed, &client_view_1));
  CHECK_FALSE(resumed);
  CHECK_FALSE(client_resumed);
  REQUIRE(original.uri_sans == std::vector<std::string>{kClientUri});
  REQUIRE(original.grant_id == std::optional<std::string>(kGrant));

  Session second;
  tls::PeerIdentity again, client_view_2;
  REQUIRE(connect(sctx, cctx, &first.s, &second, &again, &resumed, &client_resumed, &client_view_2));
  CHECK(resumed);
  CHECK(again.resumed);
  CHECK(client_resumed);
  check_same_identity(original, again);
  // The client keeps the server's identity too (egress checks its URI SAN).
  check_same_identity(client_view_1, client_view_2);
  // Both keep the verified chain's CA key hashes (checked against the
  // peer's own trust anchors): sealed in the ticket, kept with the session.
  const std::string ca_spki = identity_of_ca(env).spki_sha256;
  CHECK(original.chain_spki_sha256 == std::vector<std::string>{ca_spki});
  CHECK(again.chain_spki_sha256 == original.chain_spki_sha256);
  CHECK(client_view_1.chain_spki_sha256 == std::vector<std::string>{ca_spki});
  CHECK(client_view_2.chain_spki_sha256 == client_view_1.chain_spki_sha256);

  // A resumed session yields a fresh ticket that resumes again, same identity.
  tls::PeerIdentity third;
  tls::PeerIdentity client_view_3;
  REQUIRE(connect(sctx, cctx, &second.s, nullptr, &third, &resumed, &client_resumed, &client_view_3));
  CHECK(resumed);
  check_same_identity(original, third);
  CHECK(third.chain_spki_sha256 == original.chain_spki_sha256);
  CHECK(client_view_3.chain_spki_sha256 == client_view_1.chain_spki_sha256);
}

TEST_CASE("a saved session can be offered several times") {
  TlsEnv env;
  auto sctx = env.server_ctx();
  auto cctx = env.client_ctx();
  Session first;
  tls::PeerIdentity id;
  bool resumed = false;
  REQUIRE(connect(sctx, cctx, nullptr, &first, &id, &resumed));
  for (int i = 0; i < 2; ++i) {
    REQUIRE(connect(sctx, cctx, &first.s, nullptr, &id, &resumed));
    CHECK(resumed);
    CHECK(id.uri_sans == std::vector<std::string>{kClientUri});
  }
}

TEST_CASE("tampered tickets fall back to a full handshake") {
  TlsEnv env;
  auto sctx = env.server_ctx();
  auto cctx = env.client_ctx();
  Session first;
  REQUIRE(connect(sctx, cctx, nullptr, &first, nullptr, nullptr));
  unsigned char* ticket = first.s.MBEDTLS_PRIVATE(ticket);
  const size_t len = first.s.MBEDTLS_PRIVATE(ticket_len);
  REQUIRE(ticket != nullptr);
  REQUIRE(len > 2 + tls::TicketSealer::kHeaderLen + tls::TicketSealer::kTagLen);

  // Flip one byte in: the sealed identity (tag), the identity header (key
  // generation), the inner mbedTLS ticket (bound as AAD), the length prefix.
  for (size_t pos : {len - 1, len - 20, size_t{10}, size_t{1}}) {
    CAPTURE(pos);
    ticket[pos] ^= 0x40;
    tls::PeerIdentity id;
    bool resumed = true;
    REQUIRE(connect(sctx, cctx, &first.s, nullptr, &id, &resumed));
    CHECK_FALSE(resumed);
    CHECK(id.present);  // from the certificate of the full handshake
    CHECK(id.uri_sans == std::vector<std::string>{kClientUri});
    ticket[pos] ^= 0x40;
  }
  // Restored: resumes again.
  bool resumed = false;
  REQUIRE(connect(sctx, cctx, &first.s, nullptr, nullptr, &resumed));
  CHECK(resumed);
}

TEST_CASE("a new server context (reload) does not resume old tickets") {
  TlsEnv env;
  auto cctx = env.client_ctx();
  Session first;
  REQUIRE(connect(env.server_ctx(), cctx, nullptr, &first, nullptr, nullptr));
  tls::PeerIdentity id;
  bool resumed = true;
  REQUIRE(connect(env.server_ctx(), cctx, &first.s, nullptr, &id, &resumed));
  CHECK_FALSE(resumed);
  CHECK(id.present);
  CHECK(id.uri_sans == std::vector<std::string>{kClientUri});
}

TEST_CASE("reload with a CA bundle that no longer trusts the client: no resumption, rejected") {
  TlsEnv env;
  auto cctx = env.client_ctx();
  Session first;
  REQUIRE(connect(env.server_ctx(), cctx, nullptr, &first, nullptr, nullptr));
  TestCa next("next federation CA");
  auto sb = make_bundle(env.dir, "rotated", env.server_node, next.cert_pem());
  bool resumed = true;
  CHECK_FALSE(connect(TlsEnv::context(tls::Role::server, sb), cctx, &first.s, nullptr, nullptr, &resumed));
}

TEST_CASE("tickets disabled") {
  TlsEnv env;
  tls::TlsOptions off;
  off.session_tickets = false;
  SUBCASE("on the server: nothing to save") {
    auto sctx = env.server_ctx(off);
    CHECK(sctx->ticket_sealer() == nullptr);
    tls::TlsEngine server(sctx);
    tls::TlsEngine client(env.client_ctx());
    TlsPair pair(client, server);
    REQUIRE(pair.handshake());
    pair.flush();
    Session s;
    CHECK_FALSE(client.save_session(&s.s));
  }
  SUBCASE("on the client: tickets ignored") {
    tls::TlsEngine server(env.server_ctx());
    tls::TlsEngine client(env.client_ctx(off));
    TlsPair pair(client, server);
    REQUIRE(pair.handshake());
    pair.flush();
    CHECK(pair.client_status == Status::ok);
    Session s;
    CHECK_FALSE(client.save_session(&s.s));
  }
}

TEST_CASE("ticket lifetime bounds") {
  TlsEnv env;
  tls::TlsOptions o;
  o.ticket_lifetime_s = 0;
  auto zero = tls::TlsContext::create(tls::Role::server, env.server_bundle, o);
  REQUIRE_FALSE(zero.ok());
  CHECK(zero.message().find("lifetime") != std::string::npos);
  o.ticket_lifetime_s = 8 * 86400;
  CHECK_FALSE(tls::TlsContext::create(tls::Role::server, env.server_bundle, o).ok());
  o.ticket_lifetime_s = 7 * 86400;
  CHECK(tls::TlsContext::create(tls::Role::server, env.server_bundle, o).ok());
}

TEST_CASE("sealer: seal/open round trip and tamper detection") {
  REQUIRE(tls::init_crypto());
  auto sealer_r = tls::TicketSealer::create(3600);
  REQUIRE(sealer_r.ok());
  auto other_r = tls::TicketSealer::create(3600);
  REQUIRE(other_r.ok());
  auto sealer = std::move(sealer_r).value();
  auto other = std::move(other_r).value();
  std::string buf = "inner-ticket-bytes";
  const size_t aad_prefix = buf.size();
  buf.resize(aad_prefix + tls::TicketSealer::kHeaderLen);
  const std::string plain = "identity blob";
  std::string ct(plain.size() + tls::TicketSealer::kTagLen, '\0');
  size_t ct_len = 0;
  auto* base = reinterpret_cast<unsigned char*>(buf.data());
  auto* ctp = reinterpret_cast<unsigned char*>(ct.data());
  REQUIRE(sealer->seal(base, base + aad_prefix, plain, ctp, ct.size(), &ct_len));
  REQUIRE(ct_len == ct.size());
  auto opened = sealer->open(base, base + aad_prefix, ctp, ct_len);
  REQUIRE(opened.has_value());
  CHECK(*opened == plain);
  // Another context's key does not open it.
  CHECK_FALSE(other->open(base, base + aad_prefix, ctp, ct_len).has_value());
  // AAD (the inner ticket) changed.
  buf[0] ^= 1;
  CHECK_FALSE(sealer->open(base, base + aad_prefix, ctp, ct_len).has_value());
  buf[0] ^= 1;
  // Ciphertext changed.
  ct[0] ^= 1;
  CHECK_FALSE(sealer->open(base, base + aad_prefix, ctp, ct_len).has_value());
  ct[0] ^= 1;
  // Truncated.
  CHECK_FALSE(sealer->open(base, base + aad_prefix, ctp, 3).has_value());
  CHECK(sealer->open(base, base + aad_prefix, ctp, ct_len).has_value());
}

TEST_CASE("ticket parse with garbage input never resumes") {
  TlsEnv env;
  auto sctx = env.server_ctx();
  tls::TicketSealer* sealer = sctx->ticket_sealer();
  REQUIRE(sealer != nullptr);
  mbedtls_ssl_session session;
  for (size_t len : {size_t{0}, size_t{1}, size_t{2}, size_t{40}, size_t{300}}) {
    std::string junk(len, '\x5a');
    if (len >= 2) {
      junk[0] = 0;
      junk[1] = 3;
    }
    mbedtls_ssl_session_init(&session);
    CHECK(tls::TicketSealer::parse_cb(sealer, &session, reinterpret_cast<unsigned char*>(junk.data()), len) != 0);
    mbedtls_ssl_session_free(&session);
  }
}

TEST_CASE("ticket of a certificate that expired since is not resumed" * doctest::skip(false)) {
  // The sealed identity carries not_after; after it the ticket is refused and
  // the client must present a (valid) certificate again.
  TlsEnv env;
  CertSpec c;
  c.uri_sans = {kClientUri};
  c.not_after = now_unix() + 1;
  auto cctx = TlsEnv::context(tls::Role::client, env.client_bundle_for(env.ca, c, "short"));
  auto sctx = env.server_ctx();
  Session first;
  REQUIRE(connect(sctx, cctx, nullptr, &first, nullptr, nullptr));
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  tls::TlsEngine server(sctx);
  tls::TlsEngine client(cctx);
  client.set_session(&first.s);
  TlsPair pair(client, server);
  CHECK_FALSE(pair.handshake());
  CHECK(server.error_reason() == "certificate expired");
}

TEST_CASE("contexts shared by several threads, one engine per thread") {
  // The shared config's RNG (PSA, mutex-protected), the mbedTLS ticket
  // context (own mutex) and the sealer (mutex + thread-safe PSA keys) are
  // used concurrently here; run under ASan/TSan to catch races.
  TlsEnv env;
  auto sctx = env.server_ctx();
  auto cctx = env.client_ctx();
  constexpr int kThreads = 4;
  constexpr int kRounds = 4;
  std::atomic<int> full{0}, resumed_ok{0}, failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      mbedtls_ssl_session saved;
      mbedtls_ssl_session_init(&saved);
      bool have = false;
      for (int r = 0; r < kRounds; ++r) {
        tls::TlsEngine server(sctx);
        tls::TlsEngine client(cctx);
        if (have) client.set_session(&saved);
        TlsPair pair(client, server);
        if (!pair.handshake() || client.write("x", 1) != Status::ok) {
          ++failures;
          continue;
        }
        pair.flush();
        if (pair.server_received != "x" || server.peer().uri_sans != std::vector<std::string>{kClientUri}) {
          ++failures;
        }
        (server.resumed() ? resumed_ok : full)++;
        have = client.save_session(&saved);
      }
      mbedtls_ssl_session_free(&saved);
    });
  }
  for (auto& th : threads) th.join();
  CHECK(failures == 0);
  CHECK(full == kThreads);
  CHECK(resumed_ok == kThreads * (kRounds - 1));
}

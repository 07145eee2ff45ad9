// libFuzzer target: a server TlsEngine (proxy/tls) fed what a client sends.
//
// At startup (LLVMFuzzerInitialize) an in-memory PKI is generated with the
// test support code (EC P-256 CA, server and client leaf certificates), a
// server and a client TlsContext are built, and two ClientHellos are
// captured from a real client engine: a fresh one and one offering a session
// ticket issued by this process's server context (so the PSK path, including
// ticket unsealing, is reachable).
//
// Input: [mode][split control] then bytes.
//   mode % 4 == 0  the bytes as they are (seeds hold a ClientHello record)
//   mode % 4 == 1  the fresh ClientHello, then the bytes
//   mode % 4 == 2  the resumption ClientHello, then the bytes
//   mode % 4 == 3  the bytes as [type][len16][payload] items, each sent as a
//                  TLS record with a correct header (version 0x0303, true
//                  length), so mutations reach handshake message parsing
//   mode & 0x80    pieces go through read_from() (borrowed in place, the
//                  transport's data path) instead of feed()
// The ciphertext is fed in pieces (split control, see Splitter); after each
// piece the engine is pumped (handshake(), or read() once done) until it
// wants more input or fails. Checked: no crash, leak or UB; once failed the
// engine stays failed; the handshake never completes (the fuzzer cannot hold
// the client's key or a resumption secret: completion would be an
// authentication bypass); output stays bounded.
//
// Seeds: FUZZ_TLS_WRITE_SEEDS=DIR ./fuzz_tls_server writes seed files built
// from freshly captured ClientHellos into DIR and exits.
#include <cstring>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include <mbedtls/ssl.h>

#include "proxy/tls/tls_context.hpp"
#include "proxy/tls/tls_engine.hpp"
#include "tests/fuzz/fuzz_common.hpp"
#include "tests/support/test_pki.hpp"
#include "tests/support/tls_pump.hpp"

using namespace fedproxy;
using fedproxy::fuzz::piece;
using fedproxy::fuzz::Splitter;
using Status = tls::TlsEngine::Status;

namespace {

struct Env {
  testing::TempDir dir;
  std::shared_ptr<const tls::TlsContext> server_ctx;
  std::shared_ptr<const tls::TlsContext> client_ctx;
  std::string client_hello;          // fresh full handshake
  std::string resumption_hello;      // offers a ticket this server_ctx issued
};

Env* g_env = nullptr;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "fuzz_tls_server: setup failed: %s\n", what.c_str());
  std::exit(1);
}

std::shared_ptr<const tls::TlsContext> make_ctx(tls::Role role, std::shared_ptr<const certwatch::CertBundle> b) {
  auto ctx = tls::TlsContext::create(role, std::move(b), tls::TlsOptions{});
  if (!ctx) die("TlsContext: " + ctx.message());
  return std::move(ctx).value();
}

// The first flight of a client engine (its ClientHello record).
std::string first_flight(const std::shared_ptr<const tls::TlsContext>& cctx, const mbedtls_ssl_session* offer) {
  tls::TlsEngine client(cctx);
  if (offer != nullptr) client.set_session(offer);
  if (client.handshake() != Status::want_io) die("client did not wait for the server");
  std::string out = client.take_output();
  if (out.size() < 5 || out[0] != 0x16) die("no ClientHello record");
  return out;
}

// Full handshake plus one request so that the server's ticket reaches the
// client; returns the ClientHello of a second connection offering it.
std::string capture_resumption_hello(Env& env) {
  tls::TlsEngine server(env.server_ctx);
  tls::TlsEngine client(env.client_ctx);
  testing::TlsPair pair(client, server);
  if (!pair.handshake()) die("in-memory handshake failed: " + server.error_reason() + " / " + client.error_reason());
  if (client.write("GET / HTTP/1.1\r\n\r\n", 18) != Status::ok) die("client write failed");
  pair.flush();
  mbedtls_ssl_session session;
  mbedtls_ssl_session_init(&session);
  if (!client.save_session(&session)) die("no session ticket");
  std::string hello = first_flight(env.client_ctx, &session);
  mbedtls_ssl_session_free(&session);
  return hello;
}

void write_file(const std::string& path, std::string_view bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) die("cannot write " + path);
}

std::string record(uint8_t type, std::string_view payload) {
  std::string r;
  r += static_cast<char>(type);
  r += "\x03\x03";
  r += static_cast<char>(payload.size() >> 8);
  r += static_cast<char>(payload.size() & 0xff);
  r += payload;
  return r;
}

// mode 3 item: [type][len16][payload]
std::string item(uint8_t type, std::string_view payload) {
  std::string r;
  r += static_cast<char>(type);
  r += static_cast<char>(payload.size() >> 8);
  r += static_cast<char>(payload.size() & 0xff);
  r += payload;
  return r;
}

void write_seeds(const Env& env, const std::string& dir) {
  const std::string ccs = record(0x14, std::string_view("\x01", 1));
  const std::string junk_app = record(0x17, std::string(40, '\x5a'));
  const std::string alert = record(0x15, std::string_view("\x02\x28", 2));
  const std::string ch_payload = env.client_hello.substr(5);
  write_file(dir + "/raw-client-hello", std::string("\x00\x00", 2) + env.client_hello);
  write_file(dir + "/raw-client-hello-bytewise", std::string("\x00\x01", 2) + env.client_hello);
  write_file(dir + "/raw-client-hello-ccs-appdata", std::string("\x00\x03", 2) + env.client_hello + ccs + junk_app);
  write_file(dir + "/raw-resumption-hello", std::string("\x00\x00", 2) + env.resumption_hello);
  write_file(dir + "/fresh-then-ccs", std::string("\x01\x00", 2) + ccs + junk_app);
  write_file(dir + "/fresh-then-alert", std::string("\x01\x02", 2) + alert);
  write_file(dir + "/resume-then-ccs", std::string("\x02\x00", 2) + ccs + junk_app);
  write_file(dir + "/framed-client-hello", std::string("\x03\x00", 2) + item(0x16, ch_payload));
  write_file(dir + "/framed-client-hello-split",
             std::string("\x03\x04", 2) + item(0x16, std::string_view(ch_payload).substr(0, 40)) +
                 item(0x16, std::string_view(ch_payload).substr(40)) + item(0x14, "\x01"));
  write_file(dir + "/framed-resumption-hello", std::string("\x03\x00", 2) + item(0x16, env.resumption_hello.substr(5)));
  write_file(dir + "/raw-http-on-tls-port", std::string("\x00\x00", 2) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  // The same with the ciphertext borrowed by read_from() (bit 7 of byte 0).
  write_file(dir + "/borrowed-client-hello-bytewise", std::string("\x80\x01", 2) + env.client_hello);
  write_file(dir + "/borrowed-resume-then-ccs", std::string("\x82\x00", 2) + ccs + junk_app);
}

// Drive the server until it needs more input. Returns false once it failed.
bool pump(tls::TlsEngine& server, size_t& out_total) {
  for (int i = 0; i < 64; ++i) {
    Status st;
    if (!server.handshake_done()) {
      st = server.handshake();
      FUZZ_CHECK(!server.handshake_done(),
                 "handshake completed with a fuzzed client: authentication bypass?");
    } else {
      std::string plain;
      st = server.read(plain);
    }
    out_total += server.take_output().size();
    FUZZ_CHECK(out_total < (1u << 20), "server output grows without bound");
    if (st == Status::error) {
      FUZZ_CHECK(!server.error_reason().empty(), "error without a reason");
      return false;
    }
    if (st == Status::closed) return false;
    if (st == Status::want_io) return true;
    // ok: progress; go on until it asks for input.
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  if (!tls::init_crypto()) die("psa_crypto_init");
  auto* env = new Env;
  testing::TestCa ca("fuzz federation CA", testing::KeyType::p256);
  testing::CertSpec s;
  s.subject = "CN=fuzz server,O=acme";
  s.uri_sans = {"spiffe://acme.example/nodes/a"};
  s.dns_sans = {"acme.example"};
  testing::CertSpec c;
  c.subject = "CN=fuzz client,O=partner-labs";
  c.uri_sans = {"spiffe://partner-labs.example/nodes/primary"};
  c.grant_id = "6f1c2b8e-3d4a-4f5b-9c7d-1e2f3a4b5c6d";
  try {
    env->server_ctx = make_ctx(tls::Role::server, testing::make_bundle(env->dir, "server", ca.issue(s), ca.cert_pem()));
    env->client_ctx = make_ctx(tls::Role::client, testing::make_bundle(env->dir, "client", ca.issue(c), ca.cert_pem()));
  } catch (const std::exception& e) {
    die(e.what());
  }
  env->client_hello = first_flight(env->client_ctx, nullptr);
  env->resumption_hello = capture_resumption_hello(*env);
  g_env = env;
  if (const char* dir = std::getenv("FUZZ_TLS_WRITE_SEEDS")) {
    write_seeds(*env, dir);
    std::fprintf(stderr, "fuzz_tls_server: seeds written to %s\n", dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2 || g_env == nullptr) return 0;
  const unsigned mode = data[0] % 4;
  // The data path's read_from(): ciphertext borrowed in place, not copied.
  const bool borrowed = (data[0] & 0x80) != 0;
  Splitter split(data[1]);
  std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);

  std::string wire;
  switch (mode) {
    case 0: wire.assign(rest); break;
    case 1: wire = g_env->client_hello; wire += rest; break;
    case 2: wire = g_env->resumption_hello; wire += rest; break;
    default:
      while (rest.size() >= 3) {
        const uint8_t type = static_cast<uint8_t>(rest[0]);
        size_t len = (static_cast<uint8_t>(rest[1]) << 8) | static_cast<uint8_t>(rest[2]);
        rest.remove_prefix(3);
        if (len > rest.size()) len = rest.size();
        wire += record(type, rest.substr(0, len));
        rest.remove_prefix(len);
      }
      wire += rest;  // a stray tail as it is
      break;
  }

  tls::TlsEngine server(g_env->server_ctx);
  size_t out_total = 0;
  bool alive = true;
  size_t off = 0;
  while (alive && off < wire.size()) {
    const size_t n = piece(split.next(), wire.size() - off);
    if (borrowed) {
      // A heap copy freed right after the call: ASan reports any borrowed
      // byte the engine reads later.
      std::unique_ptr<char[]> lent(new char[n]);
      std::memcpy(lent.get(), wire.data() + off, n);
      char plain[4096];
      size_t produced = 0;
      const Status st = server.read_from(lent.get(), n, plain, sizeof plain, &produced);
      lent.reset();
      FUZZ_CHECK(produced == 0 || server.handshake_done(), "plaintext before the handshake");
      out_total += server.take_output().size();
      alive = st != Status::error && st != Status::closed && pump(server, out_total);
    } else {
      server.feed(wire.data() + off, n);
      alive = pump(server, out_total);
    }
    off += n;
  }
  if (!alive) {
    // A failed engine stays failed and takes no more input.
    FUZZ_CHECK(server.handshake() == Status::error || server.handshake_done(), "engine recovered from an error");
    std::string plain;
    const Status st = server.read(plain);
    FUZZ_CHECK(st == Status::error || st == Status::closed, "read() works after a failure");
    FUZZ_CHECK(plain.empty(), "plaintext after a failure");
  }
  server.close_notify();
  (void)server.take_output();
  return 0;
}

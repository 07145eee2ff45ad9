// In-memory pump between a client and a server TlsEngine: moves ciphertext
// both ways, optionally in tiny chunks, and collects plaintext.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "proxy/tls/tls_engine.hpp"

namespace fedproxy::testing {

class TlsPair {
 public:
  using Status = tls::TlsEngine::Status;

  // chunk: at most this many ciphertext bytes are fed per step (1 = byte by byte).
  TlsPair(tls::TlsEngine& client, tls::TlsEngine& server, size_t chunk = SIZE_MAX)
      : client_(client), server_(server), chunk_(chunk == 0 ? 1 : chunk) {}

  // Drives both handshakes until both are done (true) or one fails / no
  // progress is possible (false). On failure, the failing side's last flight
  // (its alert) is delivered to the other side, which then runs once more.
  bool handshake();

  // Delivers everything pending in both directions, calling read() on the
  // receiving side, until nothing moves. Plaintext is appended to
  // client_received / server_received.
  void flush();

  std::string client_received;  // plaintext the client read
  std::string server_received;  // plaintext the server read
  Status client_status = Status::ok;  // last status seen from the client
  Status server_status = Status::ok;

 private:
  size_t deliver(std::string& pipe, tls::TlsEngine& to);
  tls::TlsEngine& client_;
  tls::TlsEngine& server_;
  size_t chunk_;
  std::string c2s_, s2c_;  // ciphertext in flight
};

}  // namespace fedproxy::testing

#include "tests/support/tls_pump.hpp"

namespace fedproxy::testing {

size_t TlsPair::deliver(std::string& pipe, tls::TlsEngine& to) {
  if (pipe.empty()) return 0;
  const size_t n = pipe.size() < chunk_ ? pipe.size() : chunk_;
  to.feed(pipe.data(), n);
  pipe.erase(0, n);
  return n;
}

bool TlsPair::handshake() {
  for (long iter = 0; iter < 10'000'000; ++iter) {
    if (!client_.handshake_done()) client_status = client_.handshake();
    c2s_ += client_.take_output();
    if (!server_.handshake_done()) server_status = server_.handshake();
    s2c_ += server_.take_output();

    if (client_status == Status::error || server_status == Status::error) {
      // Let the other side see the alert (if it can decrypt it).
      tls::TlsEngine& other = client_status == Status::error ? server_ : client_;
      std::string& pipe = client_status == Status::error ? c2s_ : s2c_;
      other.feed(pipe.data(), pipe.size());
      pipe.clear();
      // A TLS 1.3 client is done once it sent its Finished: it learns about a
      // rejected certificate only when it next reads.
      std::string sink;
      Status st = other.handshake_done() ? other.read(sink) : other.handshake();
      if (&other == &server_) {
        server_status = st;
      } else {
        client_status = st;
      }
      return false;
    }
    if (client_.handshake_done() && server_.handshake_done()) return true;
    size_t moved = deliver(c2s_, server_) + deliver(s2c_, client_);
    if (moved == 0) return false;  // both waiting: stuck
  }
  return false;
}

void TlsPair::flush() {
  for (long iter = 0; iter < 100'000'000; ++iter) {
    c2s_ += client_.take_output();
    s2c_ += server_.take_output();
    size_t moved = 0;
    if (size_t n = deliver(c2s_, server_); n > 0) {
      moved += n;
      server_status = server_.read(server_received);
    }
    if (size_t n = deliver(s2c_, client_); n > 0) {
      moved += n;
      client_status = client_.read(client_received);
    }
    if (moved == 0 && !client_.has_output() && !server_.has_output()) return;
  }
}

}  // namespace fedproxy::testing

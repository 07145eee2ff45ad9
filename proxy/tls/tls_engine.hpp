// The TLS engine: one mbedTLS session over memory buffers. It never touches a
// socket: feed it ciphertext from the network, take ciphertext to send, read
// and write plaintext (in the spirit of picotls). Tested by pumping a client
// and a server engine against each other in memory.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <mbedtls/ssl.h>

#include "proxy/tls/peer_identity.hpp"
#include "proxy/tls/tls_context.hpp"

namespace fedproxy::tls {

class TlsEngine {
 public:
  enum class Status {
    ok,       // progress made / operation complete
    want_io,  // needs more ciphertext from the peer (and/or output flushed)
    closed,   // peer sent close_notify
    error,    // fatal: see error_reason(); send take_output() then close
  };

  // server_name: for clients, the hostname to check, or "" to skip hostname
  // checking (URI-SAN peers are checked by the caller against the identity).
  explicit TlsEngine(std::shared_ptr<const TlsContext> ctx, const std::string& server_name = "");
  ~TlsEngine();
  TlsEngine(const TlsEngine&) = delete;
  TlsEngine& operator=(const TlsEngine&) = delete;

  // Ciphertext received from the network (appended to the input buffer).
  void feed(const char* data, size_t len);

  // Drive the handshake. ok once complete (then handshake_done() is true).
  Status handshake();
  bool handshake_done() const { return handshake_done_; }

  // Decrypt everything currently decryptable, appending plaintext to out.
  // ok: got some or none but no error (call again after more feed());
  // closed: close_notify received; error: fatal.
  Status read(std::string& out);

  // The data path's zero-copy form of feed() + read(): ciphertext is read in
  // place (only what is left of it when this returns is copied into the
  // input buffer) and plaintext is decrypted straight into out[0, cap).
  // *produced says how much; when it equals cap there may be more: call
  // again with no new ciphertext.
  Status read_from(const char* cipher, size_t cipher_len, char* out, size_t cap, size_t* produced);

  // Encrypt all of data (loops over mbedTLS partial writes). ok or error.
  Status write(const char* data, size_t len);

  // Queue a close_notify alert.
  void close_notify();

  // Ciphertext produced so far, to be written to the socket.
  bool has_output() const { return !out_.empty(); }
  std::string take_output();
  // The same bytes without moving them out: the caller writes what it can and
  // consumes that much. The buffer keeps a small capacity for the next record
  // (no allocation per response), never a bulk transfer's.
  std::string_view output() const { return out_; }
  void consume_output(size_t n);
  size_t output_size() const { return out_.size(); }

  // Client side: offer a previously saved session for resumption (call before
  // the first handshake()). Server side: no-op.
  void set_session(const mbedtls_ssl_session* session);
  // Client side: after the handshake (and a ticket arrived), save the session.
  // Returns false when there is nothing worth saving.
  bool save_session(mbedtls_ssl_session* out) const;

  const PeerIdentity& peer() const { return peer_; }
  // Precise reason of the last failure, as text: "no client certificate",
  // "certificate expired", "certificate not trusted (unknown CA)",
  // "certificate revoked", "CRL expired", "key usage not allowed",
  // "protocol version not supported", "handshake failure (-0x....)", ...
  // The full, closed list is in TlsEngine::fail() (tls_engine.cpp).
  const std::string& error_reason() const { return error_reason_; }
  // The same failure as one word of kFailureCodes (a bounded metric label):
  // "no_certificate", "untrusted_issuer", ...; "" while nothing failed.
  const char* error_code() const { return error_code_; }
  // The fatal alert this engine sent when its handshake failed (RFC 8446
  // §6.2 code: 116 certificate_required, 48 unknown_ca, ...), -1 if none.
  // Sent under the keys the peer reads with at that moment (see fail()).
  int alert_sent() const { return alert_sent_; }
  // The fatal alert the peer sent us (the failure was "peer sent alert: ..."),
  // -1 if none.
  int alert_received() const { return alert_received_; }
  const char* ciphersuite() const;  // after the handshake
  // Negotiated protocol after the handshake ("TLSv1.3"), else "unknown".
  const char* protocol_version() const;
  bool resumed() const { return peer_.resumed; }
  // Whether mbedTLS still holds the peer's parsed certificate (a server
  // drops it after the handshake: peer() is what counts; a client keeps it
  // for save_session()).
  bool holds_peer_certificate() const;
  // Largest plaintext one record carries (16383 with TLS 1.3 in mbedTLS 3.6).
  size_t max_record_payload() const;

  // Internal: used by the BIO and verify callbacks.
  int bio_send(const unsigned char* buf, size_t len);
  int bio_recv(unsigned char* buf, size_t len);
  int on_verify(mbedtls_x509_crt* crt, int depth, uint32_t* flags);
  PeerIdentity& mutable_peer() { return peer_; }
  // Internal, for the session ticket callbacks (ticket_sealer.cpp): the
  // identity to seal into a ticket written now (nullptr if none), and the
  // identity restored from a ticket the peer offered.
  const PeerIdentity* identity_for_ticket() const;
  void restore_from_ticket(PeerIdentity id);

 private:
  Status fail(int ret);
  void on_handshake_complete();
  void on_new_session_ticket();
  void compact_input();
  bool has_ciphertext() const {
    return in_pos_ < in_.size() || (borrowed_ && borrowed_pos_ < borrowed_len_);
  }
  Status read_into(char* out, size_t cap, size_t* produced);
  void release_handshake_memory();  // after a completed handshake
  // Output capacity kept between records: a small response's, not a
  // handshake flight's or a bulk transfer's (idle connections stay small).
  static constexpr size_t kKeptOutputCapacity = 1024;
  std::shared_ptr<const TlsContext> ctx_;
  mbedtls_ssl_context ssl_;
  std::string in_;
  size_t in_pos_ = 0;
  // Ciphertext borrowed from the caller for the length of one read_from()
  // call (read after in_, which is empty when borrowing starts).
  size_t max_record_payload_ = 0;  // cached after the handshake (asked per write)
  const char* borrowed_ = nullptr;
  size_t borrowed_len_ = 0;
  size_t borrowed_pos_ = 0;
  std::string out_;
  bool handshake_done_ = false;
  bool is_client_ = false;
  bool setup_failed_ = false;
  bool failed_ = false;
  bool closed_ = false;
  bool cert_seen_ = false;        // the verify callback saw the depth-0 cert
  bool records_read_ = false;     // application data was decrypted at least once
  uint32_t verify_flags_ = 0;
  int last_error_ = 0;
  PeerIdentity peer_;
  // The verified chain's CA key hashes, collected top down until depth 0.
  std::vector<std::string> chain_spki_;
  std::optional<PeerIdentity> ticket_peer_;  // server: restored from a ticket;
                                             // client: identity of an offered session
  std::string saved_session_;                // client: serialized session with ticket
  std::string peer_cert_der_;                // client: server leaf (DER), for save_session()
  std::vector<std::string> peer_chain_der_;  // client: its verified CA chain (DER), top down, likewise
  std::string error_reason_;
  const char* error_code_ = "";
  int alert_sent_ = -1;
  int alert_received_ = -1;
  size_t out_mark_ = 0;  // out_.size() when the current mbedtls_ssl_handshake() call began
  void send_failure_alert(int alert, bool mbedtls_alerted);
};

// Initialise PSA crypto once per process (thread-safe, idempotent).
bool init_crypto();

// Why a TLS connection failed, as a closed vocabulary: the label of the
// "handshake failures by reason" metric and the "reason" of the log line.
inline constexpr const char* kFailureCodes[] = {
    "no_certificate",             // the peer sent no certificate
    "untrusted_issuer",           // its chain does not end at a trusted CA
    "certificate_expired",        //
    "certificate_not_yet_valid",  //
    "certificate_revoked",        // listed on the loaded CRL
    "crl_stale",                  // the CRL is past nextUpdate (fail closed) or unusable
    "bad_certificate",            // key usage, name, algorithm, unparsable, ...
    "bad_signature",              // CertificateVerify or Finished did not verify
    "protocol_version",           // not TLS 1.3
    "handshake_failure",          // no shared cipher suite / group / parameters
    "protocol_error",             // malformed or unexpected handshake message
    "peer_alert",                 // the peer refused us (its alert says why)
    "bad_record_mac",             // undecryptable record
    "not_tls",                    // the peer does not speak TLS
    "peer_closed",                // the peer closed or reset the connection
    "timeout",                    // the handshake did not finish in time
    "other",
};

// A transport error string is "<code>: <detail>" when the code is one of
// kFailureCodes; this returns that code, or for other strings (socket errors,
// "handshake timed out") the closest one ("timeout", "peer_closed", "other").
// *detail (optional) receives the text after the code.
const char* failure_code_of(std::string_view reason, std::string_view* detail = nullptr);

}  // namespace fedproxy::tls

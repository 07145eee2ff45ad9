// Private to proxy/tls: server-side TLS 1.3 session tickets that carry the
// peer identity of the original full handshake.
//
// mbedTLS drops the peer certificate when a TLS 1.3 session is resumed, so a
// resumed connection would have no client identity. The sealer wraps
// mbedtls_ssl_ticket_write/parse (which protect the session state with their
// own rotating keys) and appends the PeerIdentity, sealed with AES-256-GCM
// under a server-only random key, the mbedTLS ticket bytes being part of the
// additional data. Ticket on the wire:
//
//   u16 inner_len | inner (mbedTLS ticket) | u8 version | u32 key generation
//   | 12-byte nonce | GCM(identity) with 16-byte tag
//   AAD = every byte before the ciphertext.
//
// A blob that does not open (tampered, foreign context, rotated-out key) or an
// identity whose certificate has expired makes the parse fail, and mbedTLS
// falls back to a full handshake. Keys (both the mbedTLS ones and the sealing
// ones) belong to one TlsContext: a reload builds a new context, so tickets of
// the previous one never resume. Both rotate every `lifetime_s`; the previous
// key is still accepted, as mbedTLS does for its own keys.
//
// The engine being handshaked is found through a thread_local pointer that
// TlsEngine sets around every mbedtls_ssl_* call (tickets are written and
// parsed inside mbedtls_ssl_handshake()).
#pragma once

#include "proxy/base/result.hpp"
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ticket.h>
#include <psa/crypto.h>

namespace fedproxy::tls {

class TlsEngine;

// The engine whose mbedtls_ssl_* call is running on this thread, or nullptr.
TlsEngine* current_ticket_engine();

class TicketSealer {
 public:
  // RFC 8446 §4.6.1: a ticket lifetime is at most 7 days.
  static constexpr uint32_t kMaxLifetime = 604800;
  static constexpr size_t kNonceLen = 12;
  static constexpr size_t kTagLen = 16;
  static constexpr size_t kHeaderLen = 1 + 4 + kNonceLen;  // version, key generation, nonce

  // lifetime_s in 1..kMaxLifetime. Needs PSA crypto initialised.
  static base::Result<std::unique_ptr<TicketSealer>> create(uint32_t lifetime_s);
  ~TicketSealer();
  TicketSealer(const TicketSealer&) = delete;
  TicketSealer& operator=(const TicketSealer&) = delete;

  // mbedtls_ssl_conf_session_tickets_cb() callbacks; p_ticket is the sealer.
  static int write_cb(void* p_ticket, const mbedtls_ssl_session* session, unsigned char* start,
                      const unsigned char* end, size_t* tlen, uint32_t* lifetime);
  static int parse_cb(void* p_ticket, mbedtls_ssl_session* session, unsigned char* buf, size_t len);

  // Seal plaintext after `header` (kHeaderLen bytes, filled here) with AAD =
  // [aad_start, header + kHeaderLen). out must hold plaintext.size() + kTagLen.
  bool seal(const unsigned char* aad_start, unsigned char* header, const std::string& plaintext,
            unsigned char* out, size_t out_size, size_t* out_len);
  // Inverse: header points at the kHeaderLen bytes preceding the ciphertext.
  std::optional<std::string> open(const unsigned char* aad_start, const unsigned char* header,
                                  const unsigned char* ct, size_t ct_len);

  uint32_t lifetime() const { return lifetime_s_; }

 private:
  TicketSealer() = default;
  struct Key {
    mbedtls_svc_key_id_t id = MBEDTLS_SVC_KEY_ID_INIT;  // null = none
    uint32_t generation = 0;
    int64_t created = 0;
  };
  bool new_key(Key& k, int64_t now);
  // Key for sealing now (rotating if due); false on failure.
  bool sealing_key(mbedtls_svc_key_id_t* key, uint32_t* generation);
  bool key_for(uint32_t generation, mbedtls_svc_key_id_t* key);

  mbedtls_ssl_ticket_context ticket_;
  bool ticket_ready_ = false;
  uint32_t lifetime_s_ = 0;
  std::mutex mu_;
  Key keys_[2];
  int active_ = 0;
  uint32_t next_generation_ = 1;
};

}  // namespace fedproxy::tls

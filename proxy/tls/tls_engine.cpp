// TlsEngine: one mbedTLS session over memory buffers (no I/O).
#include "proxy/tls/tls_engine.hpp"

#include <climits>
#include <cstdio>
#include <cstring>
#include <mutex>

#include <mbedtls/platform.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/x509.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "certwatch/digest.hpp"
#include "proxy/tls/ticket_sealer.hpp"

namespace fedproxy::tls {

namespace {

// The engine whose mbedtls_ssl_* call is running on this thread. The server
// ticket callbacks are configured once per context (shared by all
// connections and threads) and receive no connection pointer: this is how
// they find the connection whose identity to seal or restore.
thread_local TlsEngine* t_current_engine = nullptr;

class CurrentEngine {
 public:
  explicit CurrentEngine(TlsEngine* e) : prev_(t_current_engine) { t_current_engine = e; }
  ~CurrentEngine() { t_current_engine = prev_; }
  CurrentEngine(const CurrentEngine&) = delete;
  CurrentEngine& operator=(const CurrentEngine&) = delete;

 private:
  TlsEngine* prev_;
};

int bio_send_cb(void* ctx, const unsigned char* buf, size_t len) {
  return static_cast<TlsEngine*>(ctx)->bio_send(buf, len);
}

int bio_recv_cb(void* ctx, unsigned char* buf, size_t len) {
  return static_cast<TlsEngine*>(ctx)->bio_recv(buf, len);
}

int verify_cb(void* ctx, mbedtls_x509_crt* crt, int depth, uint32_t* flags) {
  return static_cast<TlsEngine*>(ctx)->on_verify(crt, depth, flags);
}

std::string hex_code(int ret) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "-0x%04X", static_cast<unsigned>(-ret));
  return buf;
}

const char* alert_name(unsigned code) {
  switch (code) {
    case 0: return "close_notify";
    case 10: return "unexpected_message";
    case 20: return "bad_record_mac";
    case 22: return "record_overflow";
    case 40: return "handshake_failure";
    case 42: return "bad_certificate";
    case 43: return "unsupported_certificate";
    case 44: return "certificate_revoked";
    case 45: return "certificate_expired";
    case 46: return "certificate_unknown";
    case 47: return "illegal_parameter";
    case 48: return "unknown_ca";
    case 49: return "access_denied";
    case 50: return "decode_error";
    case 51: return "decrypt_error";
    case 70: return "protocol_version";
    case 71: return "insufficient_security";
    case 80: return "internal_error";
    case 86: return "inappropriate_fallback";
    case 90: return "user_canceled";
    case 109: return "missing_extension";
    case 110: return "unsupported_extension";
    case 112: return "unrecognized_name";
    case 115: return "unknown_psk_identity";
    case 116: return "certificate_required";
    case 120: return "no_application_protocol";
    default: return nullptr;
  }
}

// One reason per verification failure, most fundamental first. These strings
// are a closed set: they label the "handshake failures by reason" metric.
const char* reason_from_flags(uint32_t f) {
  if (f & MBEDTLS_X509_BADCERT_MISSING) return "no certificate";
  if (f & MBEDTLS_X509_BADCERT_NOT_TRUSTED) return "certificate not trusted (unknown CA)";
  if (f & MBEDTLS_X509_BADCERT_REVOKED) return "certificate revoked";
  if (f & MBEDTLS_X509_BADCERT_EXPIRED) return "certificate expired";
  if (f & MBEDTLS_X509_BADCERT_FUTURE) return "certificate not yet valid";
  if (f & MBEDTLS_X509_BADCRL_EXPIRED) return "CRL expired";
  if (f & MBEDTLS_X509_BADCRL_FUTURE) return "CRL not yet valid";
  if (f & MBEDTLS_X509_BADCRL_NOT_TRUSTED) return "CRL not trusted";
  if (f & (MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE | MBEDTLS_X509_BADCERT_NS_CERT_TYPE)) {
    return "key usage not allowed";
  }
  if (f & MBEDTLS_X509_BADCERT_CN_MISMATCH) return "certificate name mismatch";
  if (f & (MBEDTLS_X509_BADCERT_BAD_MD | MBEDTLS_X509_BADCERT_BAD_PK | MBEDTLS_X509_BADCERT_BAD_KEY |
           MBEDTLS_X509_BADCRL_BAD_MD | MBEDTLS_X509_BADCRL_BAD_PK | MBEDTLS_X509_BADCRL_BAD_KEY)) {
    return "certificate algorithm or key size not allowed";
  }
  if (f & MBEDTLS_X509_BADCERT_SKIP_VERIFY) return "certificate verification skipped";
  if (f != 0) return "certificate rejected";
  return nullptr;
}

}  // namespace

TlsEngine* current_ticket_engine() { return t_current_engine; }

bool init_crypto() {
  static std::once_flag once;
  static bool ok = false;
  std::call_once(once, [] { ok = psa_crypto_init() == PSA_SUCCESS; });
  return ok;
}

TlsEngine::TlsEngine(std::shared_ptr<const TlsContext> ctx, const std::string& server_name)
    : ctx_(std::move(ctx)) {
  mbedtls_ssl_init(&ssl_);
  if (!ctx_ || !init_crypto()) {
    setup_failed_ = true;
    error_reason_ = "TLS setup failed (no context or crypto)";
    return;
  }
  is_client_ = ctx_->role() == Role::client;
  int ret = mbedtls_ssl_setup(&ssl_, ctx_->config());
  if (ret == 0 && is_client_) {
    // Always call it: mbedTLS >= 3.6.3 fails the handshake (-0x5D80) if a
    // client never set a hostname. NULL = no name check (URI-SAN peers are
    // checked by the caller against peer()).
    ret = mbedtls_ssl_set_hostname(&ssl_, server_name.empty() ? nullptr : server_name.c_str());
  }
  if (ret != 0) {
    setup_failed_ = true;
    last_error_ = ret;
    error_reason_ = "TLS setup failed (" + hex_code(ret) + ")";
    return;
  }
  mbedtls_ssl_set_bio(&ssl_, this, bio_send_cb, bio_recv_cb, nullptr);
  mbedtls_ssl_set_verify(&ssl_, verify_cb, this);
}

TlsEngine::~TlsEngine() {
  mbedtls_ssl_free(&ssl_);
  // The exported session holds the resumption secret.
  if (!saved_session_.empty()) mbedtls_platform_zeroize(saved_session_.data(), saved_session_.size());
}

void TlsEngine::feed(const char* data, size_t len) { in_.append(data, len); }

void TlsEngine::consume_output(size_t n) {
  if (n < out_.size()) {
    out_.erase(0, n);
    return;
  }
  if (out_.capacity() > kKeptOutputCapacity) {
    std::string().swap(out_);
  } else {
    out_.clear();
  }
}

std::string TlsEngine::take_output() {
  std::string out;
  out.swap(out_);
  return out;
}

int TlsEngine::bio_send(const unsigned char* buf, size_t len) {
  // Never WANT_WRITE: the caller drains out_ (and bounds it by watermarks).
  if (len > static_cast<size_t>(INT_MAX)) len = static_cast<size_t>(INT_MAX);
  out_.append(reinterpret_cast<const char*>(buf), len);
  return static_cast<int>(len);
}

int TlsEngine::bio_recv(unsigned char* buf, size_t len) {
  const char* src;
  size_t avail;
  size_t* pos;
  if (in_pos_ < in_.size()) {
    src = in_.data();
    avail = in_.size() - in_pos_;
    pos = &in_pos_;
  } else if (borrowed_ && borrowed_pos_ < borrowed_len_) {
    src = borrowed_;
    avail = borrowed_len_ - borrowed_pos_;
    pos = &borrowed_pos_;
  } else {
    return MBEDTLS_ERR_SSL_WANT_READ;
  }
  size_t n = avail < len ? avail : len;
  if (n > static_cast<size_t>(INT_MAX)) n = static_cast<size_t>(INT_MAX);
  std::memcpy(buf, src + *pos, n);
  *pos += n;
  return static_cast<int>(n);
}

void TlsEngine::compact_input() {
  if (in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  } else if (in_pos_ > 65536 && in_pos_ > in_.size() / 2) {
    in_.erase(0, in_pos_);
    in_pos_ = 0;
  }
}

int TlsEngine::on_verify(mbedtls_x509_crt* crt, int depth, uint32_t* flags) {
  if (ctx_->options().crl_fail_open) {
    // Fail open on a stale CRL only: revocations it lists still count.
    *flags &= ~static_cast<uint32_t>(MBEDTLS_X509_BADCRL_EXPIRED | MBEDTLS_X509_BADCRL_FUTURE);
  }
  verify_flags_ |= *flags;
  if (depth > 0) {
    // A CA of the chain being verified (the trust anchor comes first): kept
    // for the check against the peer's own anchors.
    chain_spki_.push_back(certwatch::sha256_hex(crt->pk_raw.p, crt->pk_raw.len));
    if (is_client_) peer_chain_der_.emplace_back(reinterpret_cast<const char*>(crt->raw.p), crt->raw.len);
    return 0;
  }
  // mbedTLS calls this from the top of the chain down: depth 0 comes last,
  // so verify_flags_ now covers the whole chain.
  if (is_client_) peer_cert_der_.assign(reinterpret_cast<const char*>(crt->raw.p), crt->raw.len);
  peer_ = identity_from_cert(*crt);
  peer_.chain_spki_sha256 = std::move(chain_spki_);
  chain_spki_.clear();
  peer_.present = verify_flags_ == 0;
  peer_.resumed = false;
  cert_seen_ = true;
  return 0;
}

const PeerIdentity* TlsEngine::identity_for_ticket() const {
  if (cert_seen_) return peer_.present ? &peer_ : nullptr;
  if (ticket_peer_ && ticket_peer_->present) return &*ticket_peer_;
  return nullptr;
}

void TlsEngine::restore_from_ticket(PeerIdentity id) {
  id.resumed = true;
  ticket_peer_ = std::move(id);
}

void TlsEngine::on_handshake_complete() {
  max_record_payload_ = 0;
  max_record_payload_ = max_record_payload();
  handshake_done_ = true;
  if (cert_seen_) {
    // Full handshake: authmode REQUIRED and success imply a verified chain
    // (usage checks included, they run after the callback).
    peer_.present = true;
    peer_.resumed = false;
  } else if (ticket_peer_ && ticket_peer_->present) {
    // Resumption: no certificate was exchanged; the identity is the one of
    // the original handshake (server: sealed in the ticket; client: kept
    // with the saved session).
    peer_ = *ticket_peer_;
    peer_.resumed = true;
  } else {
    peer_ = PeerIdentity{};
    peer_.resumed = true;  // resumed, but the original identity is unknown
  }
}

// Memory per idle connection: a server keeps nothing from the handshake that
// it still needs. The client certificate was turned into peer_ during
// verification; mbedTLS would keep its parsed copy (MBEDTLS_SSL_KEEP_PEER_
// CERTIFICATE, several KiB) for the whole connection, and nothing of ours
// asks for it again (tickets carry peer_, sealed, not mbedTLS's copy).
// mbedtls_ssl_get_peer_cert() returns null afterwards; every mbedTLS path
// that reads session->peer_cert checks for null. The client side keeps it:
// save_session() exports it with the session.
void TlsEngine::release_handshake_memory() {
  if (!is_client_) {
    if (mbedtls_ssl_session* s = ssl_.MBEDTLS_PRIVATE(session)) {
      if (mbedtls_x509_crt* pc = s->MBEDTLS_PRIVATE(peer_cert)) {
        mbedtls_x509_crt_free(pc);
        mbedtls_free(pc);
        s->MBEDTLS_PRIVATE(peer_cert) = nullptr;
      }
    }
  }
  // The handshake flights were buffered in in_: give the capacity back.
  if (in_pos_ == in_.size()) {
    std::string().swap(in_);
    in_pos_ = 0;
  }
}

size_t TlsEngine::max_record_payload() const {
  if (max_record_payload_) return max_record_payload_;  // fixed once the handshake is done
  int n = mbedtls_ssl_get_max_out_record_payload(&ssl_);
  return n > 0 ? static_cast<size_t>(n) : 16383;
}

bool TlsEngine::holds_peer_certificate() const { return mbedtls_ssl_get_peer_cert(&ssl_) != nullptr; }

void TlsEngine::on_new_session_ticket() {
  // Client only. Export now: mbedtls_ssl_get_session() works once per ticket,
  // so keep a serialized copy that save_session() can load any number of times.
  mbedtls_ssl_session session;
  mbedtls_ssl_session_init(&session);
  if (mbedtls_ssl_get_session(&ssl_, &session) == 0) {
    size_t len = 0;
    (void)mbedtls_ssl_session_save(&session, nullptr, 0, &len);  // BUFFER_TOO_SMALL, sets len
    std::string buf(len, '\0');
    if (len > 0 && mbedtls_ssl_session_save(&session, reinterpret_cast<unsigned char*>(buf.data()), len,
                                            &len) == 0) {
      buf.resize(len);
      if (!saved_session_.empty()) mbedtls_platform_zeroize(saved_session_.data(), saved_session_.size());
      saved_session_ = std::move(buf);
    }
  }
  mbedtls_ssl_session_free(&session);
}

TlsEngine::Status TlsEngine::handshake() {
  if (setup_failed_ || failed_) return Status::error;
  if (handshake_done_) return Status::ok;
  CurrentEngine scope(this);
  for (;;) {
    int ret = mbedtls_ssl_handshake(&ssl_);
    if (ret == 0) {
      on_handshake_complete();
      compact_input();
      release_handshake_memory();
      return Status::ok;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
      compact_input();
      return Status::want_io;
    }
    if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
      on_new_session_ticket();
      continue;
    }
    return fail(ret);
  }
}

TlsEngine::Status TlsEngine::read(std::string& out) {
  char buf[16384];
  for (;;) {
    size_t n = 0;
    Status st = read_into(buf, sizeof buf, &n);
    out.append(buf, n);
    if (st != Status::ok || n < sizeof buf) return st;
  }
}

TlsEngine::Status TlsEngine::read_from(const char* cipher, size_t cipher_len, char* out, size_t cap,
                                       size_t* produced) {
  if (cipher_len > 0) {
    if (in_pos_ == in_.size()) {
      borrowed_ = cipher;
      borrowed_len_ = cipher_len;
      borrowed_pos_ = 0;
    } else {
      in_.append(cipher, cipher_len);
    }
  }
  Status st = read_into(out, cap, produced);
  if (borrowed_) {
    // Keep what was not consumed (a partial record, or more than fitted).
    if (borrowed_pos_ < borrowed_len_) {
      compact_input();
      in_.append(borrowed_ + borrowed_pos_, borrowed_len_ - borrowed_pos_);
    }
    borrowed_ = nullptr;
    borrowed_len_ = borrowed_pos_ = 0;
  }
  return st;
}

TlsEngine::Status TlsEngine::read_into(char* out, size_t cap, size_t* produced) {
  *produced = 0;
  if (setup_failed_ || failed_) return Status::error;
  if (closed_) return Status::closed;
  if (!handshake_done_) {
    Status st = handshake();
    if (st == Status::error) return st;
    if (!handshake_done_) return Status::ok;
  }
  CurrentEngine scope(this);
  bool retried = false;
  while (*produced < cap) {
    int ret = mbedtls_ssl_read(&ssl_, reinterpret_cast<unsigned char*>(out) + *produced, cap - *produced);
    if (ret > 0) {
      *produced += static_cast<size_t>(ret);
      records_read_ = true;
      retried = false;
      // Nothing left to decrypt: skip the calls that would only say
      // WANT_READ (a parked ticket comes from a call that returned no data,
      // and is handled below).
      if (!has_ciphertext() && mbedtls_ssl_get_bytes_avail(&ssl_) == 0) break;
      continue;
    }
    if (ret == MBEDTLS_ERR_SSL_WANT_READ || ret == MBEDTLS_ERR_SSL_WANT_WRITE) {
      if (mbedtls_ssl_get_bytes_avail(&ssl_) > 0) continue;
      // A post-handshake message (TLS 1.3 NewSessionTicket on a client) is
      // only parked by this call: mbedTLS returns WANT_READ with the message
      // kept, and processes it on the *next* call (its state is then past
      // HANDSHAKE_OVER, so mbedtls_ssl_is_handshake_over() cannot tell).
      // Make that call now, or the ticket would surface in a later write().
      // With nothing parked it returns WANT_READ at once.
      if (!retried) {
        retried = true;
        continue;
      }
      break;
    }
    if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {
      on_new_session_ticket();
      retried = false;
      continue;
    }
    if (ret == 0) {
      // An empty application-data record (RFC 8446 §5.1 allows them): no
      // bytes, not the end of the stream. Our BIO never reports EOF (the
      // transport does), so 0 cannot mean that here. mbedTLS itself refuses
      // a fourth empty record in a row (its guard against a CPU-burning peer).
      continue;
    }
    if (ret == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
      closed_ = true;
      compact_input();
      return Status::closed;
    }
    return fail(ret);
  }
  compact_input();
  return Status::ok;
}

TlsEngine::Status TlsEngine::write(const char* data, size_t len) {
  if (setup_failed_ || failed_) return Status::error;
  if (!handshake_done_) {
    // Writing drives the handshake; nothing is written until it completes.
    Status st = handshake();
    if (st == Status::error) return st;
    if (!handshake_done_) return Status::want_io;
  }
  CurrentEngine scope(this);
  size_t off = 0;
  while (off < len) {
    int ret = mbedtls_ssl_write(&ssl_, reinterpret_cast<const unsigned char*>(data) + off, len - off);
    if (ret > 0) {
      off += static_cast<size_t>(ret);
      continue;
    }
    if (ret == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) {  // parked by an earlier read
      on_new_session_ticket();
      continue;
    }
    // Our BIO never blocks, so anything else (WANT_* included) is fatal here.
    return fail(ret == 0 ? MBEDTLS_ERR_SSL_INTERNAL_ERROR : ret);
  }
  return Status::ok;
}

void TlsEngine::close_notify() {
  if (setup_failed_ || failed_) return;
  CurrentEngine scope(this);
  (void)mbedtls_ssl_close_notify(&ssl_);
}

// Client-side resumption and the server's identity. A resumed TLS 1.3
// handshake carries no certificate, and mbedTLS's session serialization
// drops the peer certificate. save_session() therefore puts the server's
// leaf certificate back into the exported session (the `peer_cert` field that
// MBEDTLS_SSL_KEEP_PEER_CERTIFICATE provides; freed by
// mbedtls_ssl_session_free), followed by the verified CA chain, and
// set_session() reads the identity and the chain's key hashes from it.
// Trusting it on resumption is sound: only the server that issued the ticket
// knows the resumption secret the PSK binder proves.
void TlsEngine::set_session(const mbedtls_ssl_session* session) {
  if (!is_client_ || setup_failed_ || session == nullptr || handshake_done_) return;
  // A session that cannot be used (expired, other version) is no error:
  // the handshake is then a full one.
  if (mbedtls_ssl_set_session(&ssl_, session) != 0) return;
#if defined(MBEDTLS_SSL_KEEP_PEER_CERTIFICATE)
  const mbedtls_x509_crt* pc = session->MBEDTLS_PRIVATE(peer_cert);
  if (pc != nullptr && pc->raw.p != nullptr) {
    PeerIdentity id = identity_from_cert(*pc);
    id.present = true;
    id.resumed = true;
    peer_cert_der_.assign(reinterpret_cast<const char*>(pc->raw.p), pc->raw.len);
    peer_chain_der_.clear();
    for (const mbedtls_x509_crt* ca = pc->next; ca != nullptr && ca->raw.p != nullptr; ca = ca->next) {
      id.chain_spki_sha256.push_back(certwatch::sha256_hex(ca->pk_raw.p, ca->pk_raw.len));
      peer_chain_der_.emplace_back(reinterpret_cast<const char*>(ca->raw.p), ca->raw.len);
    }
    ticket_peer_ = std::move(id);
  }
#endif
}

bool TlsEngine::save_session(mbedtls_ssl_session* out) const {
  if (!is_client_ || out == nullptr || saved_session_.empty()) return false;
  mbedtls_ssl_session_free(out);  // `out` may hold an older session
  mbedtls_ssl_session_init(out);
  if (mbedtls_ssl_session_load(out, reinterpret_cast<const unsigned char*>(saved_session_.data()),
                               saved_session_.size()) != 0) {
    return false;
  }
#if defined(MBEDTLS_SSL_KEEP_PEER_CERTIFICATE)
  if (!peer_cert_der_.empty() && out->MBEDTLS_PRIVATE(peer_cert) == nullptr) {
    auto* crt = static_cast<mbedtls_x509_crt*>(mbedtls_calloc(1, sizeof(mbedtls_x509_crt)));
    if (crt != nullptr) {
      mbedtls_x509_crt_init(crt);
      // The leaf, then the verified CA chain behind it (the list mbedTLS
      // frees with the session), so a resumed session keeps both.
      bool ok = mbedtls_x509_crt_parse_der(crt, reinterpret_cast<const unsigned char*>(peer_cert_der_.data()),
                                           peer_cert_der_.size()) == 0;
      for (size_t i = 0; ok && i < peer_chain_der_.size(); ++i) {
        ok = mbedtls_x509_crt_parse_der(crt, reinterpret_cast<const unsigned char*>(peer_chain_der_[i].data()),
                                        peer_chain_der_[i].size()) == 0;
      }
      if (ok) {
        out->MBEDTLS_PRIVATE(peer_cert) = crt;
      } else {
        mbedtls_x509_crt_free(crt);
        mbedtls_free(crt);
      }
    }
  }
#endif
  return true;
}

const char* TlsEngine::ciphersuite() const {
  if (!handshake_done_) return "";
  switch (mbedtls_ssl_get_ciphersuite_id_from_ssl(&ssl_)) {
    case MBEDTLS_TLS1_3_AES_256_GCM_SHA384: return "TLS_AES_256_GCM_SHA384";
    case MBEDTLS_TLS1_3_AES_128_GCM_SHA256: return "TLS_AES_128_GCM_SHA256";
    case MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256: return "TLS_CHACHA20_POLY1305_SHA256";
    default: return mbedtls_ssl_get_ciphersuite(&ssl_);
  }
}

const char* TlsEngine::protocol_version() const {
  if (!handshake_done_) return "unknown";
  return mbedtls_ssl_get_version(&ssl_);
}

TlsEngine::Status TlsEngine::fail(int ret) {
  failed_ = true;
  last_error_ = ret;
  peer_.present = false;
  uint32_t flags = verify_flags_;
  const uint32_t result = mbedtls_ssl_get_verify_result(&ssl_);
  if (result != 0xFFFFFFFFu) flags |= result;
  const char* by_flags = reason_from_flags(flags);
  switch (ret) {
    case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
      error_reason_ = "no client certificate";
      break;
    case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
    case MBEDTLS_ERR_SSL_BAD_CERTIFICATE:
      if (by_flags != nullptr && std::strcmp(by_flags, "no certificate") == 0) {
        error_reason_ = is_client_ ? "no server certificate" : "no client certificate";
      } else {
        error_reason_ = by_flags != nullptr ? by_flags : "bad certificate";
      }
      break;
    case MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION:
      error_reason_ = "protocol version not supported";
      break;
    case MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE:
      // Measured: no common suite (alert sent) or no common group (no alert).
      error_reason_ = by_flags != nullptr ? by_flags : "no shared cipher suite or parameters";
      break;
    case MBEDTLS_ERR_SSL_INVALID_MAC:
      // TLS 1.3 + mbedTLS: a peer that rejects our certificate sends its alert
      // under keys we are no longer (server) / not yet (client... see #10877)
      // using, so its rejection arrives as an undecryptable record.
      if (!handshake_done_ && !is_client_) {
        error_reason_ = "bad record MAC during handshake (the client probably rejected our certificate)";
      } else if (handshake_done_ && is_client_ && !records_read_) {
        error_reason_ = "bad record MAC right after handshake (the server probably rejected our certificate)";
      } else {
        error_reason_ = "bad record MAC (decryption failed)";
      }
      break;
    case MBEDTLS_ERR_SSL_INVALID_RECORD:
      error_reason_ = "invalid TLS record (peer not speaking TLS?)";
      break;
    case MBEDTLS_ERR_SSL_DECODE_ERROR:
      error_reason_ = "malformed handshake message";
      break;
    case MBEDTLS_ERR_SSL_ILLEGAL_PARAMETER:
      error_reason_ = "illegal parameter in handshake";
      break;
    case MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE:
      error_reason_ = "unexpected message";
      break;
    case MBEDTLS_ERR_SSL_UNSUPPORTED_EXTENSION:
      error_reason_ = "unsupported extension";
      break;
    case MBEDTLS_ERR_SSL_CONN_EOF:
      error_reason_ = "connection closed";
      break;
    case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
      error_reason_ = "peer closed during handshake";
      break;
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE: {
      // mbedTLS has no getter for the received alert; the record it just
      // processed is still in in_msg (level, description).
      const unsigned char* msg = ssl_.MBEDTLS_PRIVATE(in_msg);
      const char* name = msg != nullptr ? alert_name(msg[1]) : nullptr;
      if (name != nullptr) {
        error_reason_ = std::string("peer sent alert: ") + name;
      } else if (msg != nullptr) {
        error_reason_ = "peer sent alert: " + std::to_string(msg[1]);
      } else {
        error_reason_ = "peer sent alert";
      }
      break;
    }
    default:
      if (ret <= -0x2000 && ret > -0x3000 && by_flags == nullptr) {
        // X.509 layer: the peer's certificate could not be parsed (an
        // unknown critical extension is -0x2562, Ed25519 -0x262E).
        error_reason_ = "unsupported or malformed peer certificate (" + hex_code(ret) + ")";
      } else if (by_flags != nullptr) {
        error_reason_ = by_flags;
      } else if (handshake_done_) {
        error_reason_ = "TLS error (" + hex_code(ret) + ")";
      } else {
        error_reason_ = "handshake failure (" + hex_code(ret) + ")";
      }
      break;
  }
  return Status::error;
}

}  // namespace fedproxy::tls

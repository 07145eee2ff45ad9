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

// One reason per verification failure, most fundamental first (an untrusted
// certificate's dates mean nothing), with its failure code and the alert that
// names it (RFC 8446 §6.2; not-yet-valid has none of its own: bad_certificate,
// as OpenSSL sends). These strings are a closed set.
struct FlagReason {
  uint32_t flags;
  const char* text;
  const char* code;
  unsigned char alert;
};

constexpr FlagReason kFlagReasons[] = {
    {MBEDTLS_X509_BADCERT_MISSING, "no certificate", "no_certificate", MBEDTLS_SSL_ALERT_MSG_CERT_REQUIRED},
    {MBEDTLS_X509_BADCERT_NOT_TRUSTED, "certificate not trusted (unknown CA)", "untrusted_issuer",
     MBEDTLS_SSL_ALERT_MSG_UNKNOWN_CA},
    {MBEDTLS_X509_BADCERT_REVOKED, "certificate revoked", "certificate_revoked", MBEDTLS_SSL_ALERT_MSG_CERT_REVOKED},
    {MBEDTLS_X509_BADCERT_EXPIRED, "certificate expired", "certificate_expired", MBEDTLS_SSL_ALERT_MSG_CERT_EXPIRED},
    {MBEDTLS_X509_BADCERT_FUTURE, "certificate not yet valid", "certificate_not_yet_valid",
     MBEDTLS_SSL_ALERT_MSG_BAD_CERT},
    {MBEDTLS_X509_BADCRL_EXPIRED, "CRL expired", "crl_stale", MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN},
    {MBEDTLS_X509_BADCRL_FUTURE, "CRL not yet valid", "crl_stale", MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN},
    {MBEDTLS_X509_BADCRL_NOT_TRUSTED, "CRL not trusted", "crl_stale", MBEDTLS_SSL_ALERT_MSG_CERT_UNKNOWN},
    {MBEDTLS_X509_BADCERT_KEY_USAGE | MBEDTLS_X509_BADCERT_EXT_KEY_USAGE | MBEDTLS_X509_BADCERT_NS_CERT_TYPE,
     "key usage not allowed", "bad_certificate", MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT},
    {MBEDTLS_X509_BADCERT_CN_MISMATCH, "certificate name mismatch", "bad_certificate", MBEDTLS_SSL_ALERT_MSG_BAD_CERT},
    {MBEDTLS_X509_BADCERT_BAD_MD | MBEDTLS_X509_BADCERT_BAD_PK | MBEDTLS_X509_BADCERT_BAD_KEY |
         MBEDTLS_X509_BADCRL_BAD_MD | MBEDTLS_X509_BADCRL_BAD_PK | MBEDTLS_X509_BADCRL_BAD_KEY,
     "certificate algorithm or key size not allowed", "bad_certificate", MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_CERT},
    {MBEDTLS_X509_BADCERT_SKIP_VERIFY, "certificate verification skipped", "bad_certificate",
     MBEDTLS_SSL_ALERT_MSG_BAD_CERT},
    {~uint32_t{0}, "certificate rejected", "bad_certificate", MBEDTLS_SSL_ALERT_MSG_BAD_CERT},
};

const FlagReason* reason_from_flags(uint32_t f) {
  if (f == 0) return nullptr;
  for (const FlagReason& r : kFlagReasons) {
    if (f & r.flags) return &r;
  }
  return nullptr;
}

// TLS record header: type, version (2), length (2).
constexpr size_t kRecordHeader = 5;
constexpr unsigned char kRecordAlert = 21;
constexpr unsigned char kRecordApplicationData = 23;  // TLS 1.3: every encrypted record

// cur_out_ctr is a big-endian 64-bit counter.
void decrement_counter(unsigned char* ctr, size_t len) {
  for (size_t i = len; i-- > 0;) {
    if (ctr[i]-- != 0) break;
  }
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
  if (depth == 0 && ctx_->bundle().crl_incomplete()) {
    // A CRL URL has delivered nothing yet: revocation cannot be judged, the
    // same case as a stale CRL (and the same fail-open switch).
    *flags |= MBEDTLS_X509_BADCRL_EXPIRED;
  }
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
    // For fail(): where this call's output starts, and which alert (if any)
    // mbedTLS pends in it (0 = close_notify, never pended).
    out_mark_ = out_.size();
    ssl_.MBEDTLS_PRIVATE(alert_type) = 0;
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
  const bool in_handshake = !handshake_done_;
  failed_ = true;
  last_error_ = ret;
  peer_.present = false;
  uint32_t flags = verify_flags_;
  const uint32_t result = mbedtls_ssl_get_verify_result(&ssl_);
  if (result != 0xFFFFFFFFu) flags |= result;
  const FlagReason* by_flags = reason_from_flags(flags);
  // The alert mbedTLS pended for this failure (handshake() clears the field
  // before each call; 0 = none): it tells apart failures that share a code.
  const int pended = in_handshake ? ssl_.MBEDTLS_PRIVATE(alert_type) : 0;
  int alert = -1;  // what the peer should hear from us
  auto set = [&](const char* code, std::string text, int a) {
    error_code_ = code;
    error_reason_ = std::move(text);
    alert = a;
  };
  auto set_by_flags = [&](const FlagReason& r) {
    if (std::strcmp(r.code, "no_certificate") == 0) {
      // certificate_required is the server's alert (RFC 8446 §4.4.2.4).
      set(r.code, is_client_ ? "no server certificate" : "no client certificate",
          is_client_ ? MBEDTLS_SSL_ALERT_MSG_DECODE_ERROR : r.alert);
    } else {
      set(r.code, r.text, r.alert);
    }
  };
  switch (ret) {
    case MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE:
      // mbedTLS pends the SSLv3 no_certificate (41) here; TLS 1.3 says 116.
      set("no_certificate", "no client certificate", MBEDTLS_SSL_ALERT_MSG_CERT_REQUIRED);
      break;
    case MBEDTLS_ERR_X509_CERT_VERIFY_FAILED:
    case MBEDTLS_ERR_SSL_BAD_CERTIFICATE:
      if (by_flags != nullptr) {
        set_by_flags(*by_flags);
      } else {
        set("bad_certificate", "bad certificate", MBEDTLS_SSL_ALERT_MSG_BAD_CERT);
      }
      break;
    case MBEDTLS_ERR_SSL_BAD_PROTOCOL_VERSION:
      set("protocol_version", "protocol version not supported", MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION);
      break;
    case MBEDTLS_ERR_SSL_HANDSHAKE_FAILURE:
      if (by_flags != nullptr) {
        set_by_flags(*by_flags);
      } else if (pended == MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR) {
        // CertificateVerify signature or Finished MAC (RFC 8446 §4.4.3/4.4.4).
        set("bad_signature", "handshake signature or Finished did not verify", MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR);
      } else {
        // Measured: no common suite (mbedTLS alerts) or no common group (it
        // does not; we send handshake_failure then).
        set("handshake_failure", "no shared cipher suite or parameters", MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE);
      }
      break;
    case MBEDTLS_ERR_SSL_INVALID_MAC:
      // mbedTLS sends bad_record_mac itself. Before our own alerts were sent
      // under the right keys (send_failure_alert), an mbedTLS peer's
      // rejection arrived as an undecryptable record (Mbed-TLS #10877); a
      // peer with that bug still shows up like this.
      if (!handshake_done_ && !is_client_) {
        set("bad_record_mac", "bad record MAC during handshake (the client probably rejected our certificate)", -1);
      } else if (handshake_done_ && is_client_ && !records_read_) {
        set("bad_record_mac", "bad record MAC right after handshake (the server probably rejected our certificate)",
            -1);
      } else {
        set("bad_record_mac", "bad record MAC (decryption failed)", -1);
      }
      break;
    case MBEDTLS_ERR_SSL_INVALID_RECORD:
      set("not_tls", "invalid TLS record (peer not speaking TLS?)", -1);
      break;
    case MBEDTLS_ERR_SSL_DECODE_ERROR:
      set("protocol_error", "malformed handshake message", pended ? pended : MBEDTLS_SSL_ALERT_MSG_DECODE_ERROR);
      break;
    case MBEDTLS_ERR_SSL_ILLEGAL_PARAMETER:
      set("protocol_error", "illegal parameter in handshake", pended ? pended : MBEDTLS_SSL_ALERT_MSG_ILLEGAL_PARAMETER);
      break;
    case MBEDTLS_ERR_SSL_UNEXPECTED_MESSAGE:
      set("protocol_error", "unexpected message", pended ? pended : MBEDTLS_SSL_ALERT_MSG_UNEXPECTED_MESSAGE);
      break;
    case MBEDTLS_ERR_SSL_UNSUPPORTED_EXTENSION:
      set("protocol_error", "unsupported extension", pended ? pended : MBEDTLS_SSL_ALERT_MSG_UNSUPPORTED_EXT);
      break;
    case MBEDTLS_ERR_SSL_CONN_EOF:
      set("peer_closed", "connection closed", -1);
      break;
    case MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY:
      set("peer_closed", "peer closed during handshake", -1);
      break;
    case MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE: {
      // mbedTLS has no getter for the received alert; the record it just
      // processed is still in in_msg (level, description). Never answered.
      const unsigned char* msg = ssl_.MBEDTLS_PRIVATE(in_msg);
      if (msg != nullptr && ssl_.MBEDTLS_PRIVATE(in_msgtype) == MBEDTLS_SSL_MSG_ALERT) {
        alert_received_ = msg[1];
        const char* name = alert_name(msg[1]);
        set("peer_alert", name != nullptr ? std::string("peer sent alert: ") + name
                                          : "peer sent alert: " + std::to_string(msg[1]),
            -1);
      } else {
        set("peer_alert", "peer sent alert", -1);
      }
      break;
    }
    default:
      if (ret <= -0x2000 && ret > -0x3000 && by_flags == nullptr) {
        // X.509 layer: the peer's certificate could not be parsed (an
        // unknown critical extension is -0x2562, Ed25519 -0x262E).
        set("bad_certificate", "unsupported or malformed peer certificate (" + hex_code(ret) + ")",
            pended ? pended : MBEDTLS_SSL_ALERT_MSG_BAD_CERT);
      } else if (by_flags != nullptr) {
        set_by_flags(*by_flags);
      } else if (handshake_done_) {
        set("other", "TLS error (" + hex_code(ret) + ")", -1);
      } else {
        set("handshake_failure", "handshake failure (" + hex_code(ret) + ")",
            pended ? pended : MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE);
      }
      break;
  }
  if (in_handshake && alert >= 0) {
    // Did mbedTLS send an alert of its own in this call (always its last
    // record)? A pended one, or the one mbedtls_ssl_verify_certificate()
    // sends directly.
    const bool mbedtls_alerted = pended != 0 || ret == MBEDTLS_ERR_X509_CERT_VERIFY_FAILED ||
                                 ret == MBEDTLS_ERR_SSL_BAD_CERTIFICATE || ret == MBEDTLS_ERR_SSL_CA_CHAIN_REQUIRED;
    send_failure_alert(alert, mbedtls_alerted);
  }
  return Status::error;
}

// The fatal alert for a failed handshake, exactly once, under the keys the
// peer reads with. mbedTLS 3.6 sends most alerts itself, but in TLS 1.3
//  - a server failing on the client's second flight (its certificate,
//    CertificateVerify, Finished) sends it under its handshake keys, while
//    every record after the server's Finished must use the application keys
//    (RFC 8446 §4.4.4; Mbed-TLS #10877): no client can decrypt it;
//  - a client failing on the server's flight sends it in plaintext while the
//    server reads handshake-encrypted records: the server cannot read it;
//  - some alerts are not the most precise one (no_certificate 41, an SSLv3
//    alert, where TLS 1.3 has certificate_required 116) or missing (no
//    common group).
// So: drop mbedTLS's alert record from this call's output (it has not left
// the engine yet; its sequence number is given back), switch to the right
// keys, and send ours.
void TlsEngine::send_failure_alert(int alert, bool mbedtls_alerted) {
  // mbedTLS's alert, if it sent one in this call: the last record written
  // (a plaintext alert record, or a short encrypted one; out_msgtype is the
  // outer type then, application_data, so it cannot tell).
  size_t last = std::string::npos;
  if (out_.size() > out_mark_) {
    size_t pos = out_mark_;
    while (pos + kRecordHeader <= out_.size()) {
      const size_t len = (static_cast<size_t>(static_cast<unsigned char>(out_[pos + 3])) << 8) |
                         static_cast<unsigned char>(out_[pos + 4]);
      if (pos + kRecordHeader + len > out_.size()) break;
      last = pos;
      pos += kRecordHeader + len;
    }
    if (pos != out_.size()) last = std::string::npos;
    if (last != std::string::npos) {
      const auto type = static_cast<unsigned char>(out_[last]);
      const size_t len = out_.size() - last - kRecordHeader;
      const bool plain_alert = type == kRecordAlert && len == 2;
      // 2 bytes + inner type, padded (MBEDTLS_SSL_CID_TLS1_3_PADDING_GRANULARITY), + tag
      const bool sealed_alert = mbedtls_alerted && type == kRecordApplicationData && len <= 64;
      if (!plain_alert && !sealed_alert) last = std::string::npos;
    }
  }
  mbedtls_ssl_transform* const current = ssl_.MBEDTLS_PRIVATE(transform_out);
  mbedtls_ssl_transform* want = current;
  if (!is_client_ && ssl_.MBEDTLS_PRIVATE(transform_application) != nullptr) {
    want = ssl_.MBEDTLS_PRIVATE(transform_application);  // past our Finished
  } else if (is_client_ && current == nullptr && ssl_.MBEDTLS_PRIVATE(transform_in) != nullptr) {
    want = ssl_.MBEDTLS_PRIVATE(transform_in);  // the handshake keys (one transform, both directions)
  }
  unsigned char* const ctr = ssl_.MBEDTLS_PRIVATE(cur_out_ctr);
  constexpr size_t kCtrLen = sizeof(ssl_.MBEDTLS_PRIVATE(cur_out_ctr));
  if (last != std::string::npos) {
    const bool plain = current == nullptr && out_.size() - last == kRecordHeader + 2;
    if (want == current && plain && static_cast<unsigned char>(out_[last + 6]) == alert) {
      alert_sent_ = alert;  // already the right one, readable
      return;
    }
    out_.resize(last);
    decrement_counter(ctr, kCtrLen);
  }
  if (want != current) {
    ssl_.MBEDTLS_PRIVATE(transform_out) = want;  // what mbedtls_ssl_set_outbound_transform() does
    std::memset(ctr, 0, kCtrLen);
  }
  int rc = mbedtls_ssl_send_alert_message(&ssl_, MBEDTLS_SSL_ALERT_LEVEL_FATAL, static_cast<unsigned char>(alert));
  if (rc == 0 && ssl_.MBEDTLS_PRIVATE(out_left) != 0) {
    // It flushed earlier output instead (cannot happen with our BIO): again.
    rc = mbedtls_ssl_send_alert_message(&ssl_, MBEDTLS_SSL_ALERT_LEVEL_FATAL, static_cast<unsigned char>(alert));
  }
  if (rc == 0) alert_sent_ = alert;
}

const char* failure_code_of(std::string_view reason, std::string_view* detail) {
  if (detail != nullptr) *detail = reason;
  for (const char* code : kFailureCodes) {
    const size_t n = std::strlen(code);
    if (reason.size() >= n + 2 && reason.compare(0, n, code) == 0 && reason.compare(n, 2, ": ") == 0) {
      if (detail != nullptr) *detail = reason.substr(n + 2);
      return code;
    }
  }
  if (reason.find("timed out") != std::string_view::npos) return "timeout";
  if (reason.find("reset") != std::string_view::npos || reason.find("closed") != std::string_view::npos ||
      reason.find("end of file") != std::string_view::npos) {
    return "peer_closed";
  }
  return "other";
}

}  // namespace fedproxy::tls

// Session tickets that keep the peer identity across TLS 1.3 resumption.
// See ticket_sealer.hpp for the format and the reasoning.
#include "proxy/tls/ticket_sealer.hpp"

#include <cstdio>
#include <cstring>
#include <ctime>

// mbedTLS 3.6.6's psa_util.h lacks the extern "C" guard its other headers have.
extern "C" {
#include <mbedtls/psa_util.h>
}

#include "proxy/tls/peer_identity.hpp"
#include "proxy/tls/tls_engine.hpp"

namespace fedproxy::tls {

namespace {

constexpr uint8_t kBlobVersion = 1;
constexpr psa_algorithm_t kAlg = PSA_ALG_GCM;

int64_t now_s() { return static_cast<int64_t>(std::time(nullptr)); }

void put_u32(unsigned char* p, uint32_t v) {
  p[0] = static_cast<unsigned char>(v >> 24);
  p[1] = static_cast<unsigned char>(v >> 16);
  p[2] = static_cast<unsigned char>(v >> 8);
  p[3] = static_cast<unsigned char>(v);
}

uint32_t get_u32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

base::Result<std::unique_ptr<TicketSealer>> TicketSealer::create(uint32_t lifetime_s) {
  auto set_error = [](std::string e) { return base::make_error(base::Errc::invalid, std::move(e)); };
  if (lifetime_s == 0 || lifetime_s > kMaxLifetime) {
    return set_error("session ticket lifetime must be between 1 and 604800 seconds (7 days)");
  }
  if (psa_crypto_init() != PSA_SUCCESS) return set_error("cannot initialise PSA crypto");
  std::unique_ptr<TicketSealer> s(new TicketSealer());
  s->lifetime_s_ = lifetime_s;
  mbedtls_ssl_ticket_init(&s->ticket_);
  s->ticket_ready_ = true;
  int ret = mbedtls_ssl_ticket_setup(&s->ticket_, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE,
                                     MBEDTLS_CIPHER_AES_256_GCM, lifetime_s);
  if (ret != 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "session ticket setup failed (-0x%04X)", static_cast<unsigned>(-ret));
    return set_error(buf);
  }
  if (!s->new_key(s->keys_[0], now_s())) return set_error("cannot generate the session ticket sealing key");
  s->active_ = 0;
  return s;
}

TicketSealer::~TicketSealer() {
  for (Key& k : keys_) {
    if (!mbedtls_svc_key_id_is_null(k.id)) psa_destroy_key(k.id);
  }
  if (ticket_ready_) mbedtls_ssl_ticket_free(&ticket_);
}

bool TicketSealer::new_key(Key& k, int64_t now) {
  if (!mbedtls_svc_key_id_is_null(k.id)) {
    psa_destroy_key(k.id);
    k.id = MBEDTLS_SVC_KEY_ID_INIT;
  }
  psa_key_attributes_t attr = PSA_KEY_ATTRIBUTES_INIT;
  psa_set_key_type(&attr, PSA_KEY_TYPE_AES);
  psa_set_key_bits(&attr, 256);
  psa_set_key_usage_flags(&attr, PSA_KEY_USAGE_ENCRYPT | PSA_KEY_USAGE_DECRYPT);
  psa_set_key_algorithm(&attr, kAlg);
  psa_set_key_lifetime(&attr, PSA_KEY_LIFETIME_VOLATILE);
  mbedtls_svc_key_id_t id = MBEDTLS_SVC_KEY_ID_INIT;
  psa_status_t st = psa_generate_key(&attr, &id);
  psa_reset_key_attributes(&attr);
  if (st != PSA_SUCCESS) return false;
  k.id = id;
  k.generation = next_generation_++;
  k.created = now;
  return true;
}

bool TicketSealer::sealing_key(mbedtls_svc_key_id_t* key, uint32_t* generation) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = now_s();
  Key& cur = keys_[active_];
  if (mbedtls_svc_key_id_is_null(cur.id) || now < cur.created ||
      now - cur.created >= static_cast<int64_t>(lifetime_s_)) {
    const int next = 1 - active_;
    if (!new_key(keys_[next], now)) return false;
    active_ = next;
  }
  *key = keys_[active_].id;
  *generation = keys_[active_].generation;
  return true;
}

bool TicketSealer::key_for(uint32_t generation, mbedtls_svc_key_id_t* key) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const Key& k : keys_) {
    if (!mbedtls_svc_key_id_is_null(k.id) && k.generation == generation) {
      *key = k.id;
      return true;
    }
  }
  return false;
}

bool TicketSealer::seal(const unsigned char* aad_start, unsigned char* header, const std::string& plaintext,
                        unsigned char* out, size_t out_size, size_t* out_len) {
  mbedtls_svc_key_id_t key;
  uint32_t generation = 0;
  if (!sealing_key(&key, &generation)) return false;
  header[0] = kBlobVersion;
  put_u32(header + 1, generation);
  unsigned char* nonce = header + 5;
  if (psa_generate_random(nonce, kNonceLen) != PSA_SUCCESS) return false;
  const size_t aad_len = static_cast<size_t>(header + kHeaderLen - aad_start);
  psa_status_t st = psa_aead_encrypt(key, kAlg, nonce, kNonceLen, aad_start, aad_len,
                                     reinterpret_cast<const uint8_t*>(plaintext.data()), plaintext.size(),
                                     out, out_size, out_len);
  return st == PSA_SUCCESS;
}

std::optional<std::string> TicketSealer::open(const unsigned char* aad_start, const unsigned char* header,
                                              const unsigned char* ct, size_t ct_len) {
  if (header[0] != kBlobVersion || ct_len < kTagLen) return std::nullopt;
  mbedtls_svc_key_id_t key;
  if (!key_for(get_u32(header + 1), &key)) return std::nullopt;
  const size_t aad_len = static_cast<size_t>(header + kHeaderLen - aad_start);
  std::string pt(ct_len - kTagLen, '\0');
  size_t pt_len = 0;
  psa_status_t st = psa_aead_decrypt(key, kAlg, header + 5, kNonceLen, aad_start, aad_len, ct, ct_len,
                                     reinterpret_cast<uint8_t*>(pt.data()), pt.size(), &pt_len);
  if (st != PSA_SUCCESS) return std::nullopt;
  pt.resize(pt_len);
  return pt;
}

int TicketSealer::write_cb(void* p_ticket, const mbedtls_ssl_session* session, unsigned char* start,
                           const unsigned char* end, size_t* tlen, uint32_t* lifetime) {
  auto* self = static_cast<TicketSealer*>(p_ticket);
  *tlen = 0;
  if (end < start || static_cast<size_t>(end - start) < 2 + kHeaderLen + kTagLen) {
    return MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL;
  }
  // Identity to carry: from this handshake's certificate, or the one restored
  // from the ticket this handshake resumed. None → a blob that never opens
  // into a usable identity, so the ticket cannot resume.
  PeerIdentity none;
  const PeerIdentity* id = nullptr;
  if (TlsEngine* eng = current_ticket_engine()) id = eng->identity_for_ticket();
  const std::string plain = (id != nullptr ? *id : none).serialize();

  size_t inner_len = 0;
  int ret = mbedtls_ssl_ticket_write(&self->ticket_, session, start + 2, end, &inner_len, lifetime);
  if (ret != 0) return ret;
  if (inner_len > 0xffff) return MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL;
  start[0] = static_cast<unsigned char>(inner_len >> 8);
  start[1] = static_cast<unsigned char>(inner_len);
  unsigned char* header = start + 2 + inner_len;
  if (static_cast<size_t>(end - header) < kHeaderLen + plain.size() + kTagLen) {
    return MBEDTLS_ERR_SSL_BUFFER_TOO_SMALL;
  }
  unsigned char* ct = header + kHeaderLen;
  size_t ct_len = 0;
  if (!self->seal(start, header, plain, ct, static_cast<size_t>(end - ct), &ct_len)) {
    return MBEDTLS_ERR_SSL_INTERNAL_ERROR;
  }
  *tlen = 2 + inner_len + kHeaderLen + ct_len;
  return 0;
}

int TicketSealer::parse_cb(void* p_ticket, mbedtls_ssl_session* session, unsigned char* buf, size_t len) {
  auto* self = static_cast<TicketSealer*>(p_ticket);
  // Every failure below maps to "not our ticket" (INVALID_MAC) or "expired":
  // for both, mbedTLS ignores the PSK and runs a full handshake.
  if (len < 2) return MBEDTLS_ERR_SSL_INVALID_MAC;
  const size_t inner_len = (size_t{buf[0]} << 8) | buf[1];
  if (len < 2 + inner_len + kHeaderLen + kTagLen) return MBEDTLS_ERR_SSL_INVALID_MAC;
  const unsigned char* header = buf + 2 + inner_len;
  const unsigned char* ct = header + kHeaderLen;
  const size_t ct_len = len - (2 + inner_len + kHeaderLen);
  // Open the identity first: mbedtls_ssl_ticket_parse() decrypts the inner
  // ticket in place, and its ciphertext is part of our additional data.
  std::optional<std::string> plain = self->open(buf, header, ct, ct_len);
  if (!plain) return MBEDTLS_ERR_SSL_INVALID_MAC;
  std::optional<PeerIdentity> id = PeerIdentity::deserialize(*plain);
  if (!id || !id->present) return MBEDTLS_ERR_SSL_INVALID_MAC;
  // The certificate that authenticated the original handshake has expired
  // since: make the client prove itself again.
  if (id->not_after <= now_s()) return MBEDTLS_ERR_SSL_SESSION_TICKET_EXPIRED;
  TlsEngine* eng = current_ticket_engine();
  if (eng == nullptr) return MBEDTLS_ERR_SSL_INVALID_MAC;
  int ret = mbedtls_ssl_ticket_parse(&self->ticket_, session, buf + 2, inner_len);
  if (ret != 0) return ret;
  eng->restore_from_ticket(std::move(*id));
  return 0;
}

}  // namespace fedproxy::tls

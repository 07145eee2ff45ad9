// TlsContext: one immutable mbedTLS configuration per CertBundle and role.
#include "proxy/tls/tls_context.hpp"

#include <cstdio>

// mbedTLS 3.6.6's psa_util.h lacks the extern "C" guard its other headers have.
extern "C" {
#include <mbedtls/psa_util.h>
}
#include <mbedtls/ssl_ciphersuites.h>

#include "proxy/tls/ticket_sealer.hpp"
#include "proxy/tls/tls_engine.hpp"

namespace fedproxy::tls {

namespace {

// SPEC §2: exactly these three TLS 1.3 suites. mbedTLS servers pick the
// first suite of the *client's* list that they support, so this order only
// matters when we are the client (egress): ChaCha20-Poly1305 first because
// mbedTLS runs it ~1.55x faster than AES-GCM on this class of machine (no
// SHA-NI/VAES path in mbedTLS); peers that do not offer it still get AES-GCM.
const int kCiphersuites[] = {
    MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256,
    MBEDTLS_TLS1_3_AES_256_GCM_SHA384,
    MBEDTLS_TLS1_3_AES_128_GCM_SHA256,
    0,
};

// Key exchange groups. P-256 first: with mbedTLS its ECDHE is cheaper than
// X25519, and a client sends a key share for its first group only. A server
// accepts any client key share that is in this list (no HelloRetryRequest
// for preference), so clients preferring X25519 keep their single round trip.
const uint16_t kGroups[] = {
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP384R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_SECP521R1,
    MBEDTLS_SSL_IANA_TLS_GROUP_NONE,
};

std::string code_str(int ret) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "-0x%04X", static_cast<unsigned>(-ret));
  return buf;
}

}  // namespace

base::Result<std::shared_ptr<const TlsContext>> TlsContext::create(
    Role role, std::shared_ptr<const certwatch::CertBundle> bundle, const TlsOptions& options) {
  auto set_error = [](std::string e) { return base::make_error(base::Errc::invalid, std::move(e)); };
  if (!bundle) return set_error("no certificate bundle");
  if (!init_crypto()) return set_error("cannot initialise PSA crypto");

  std::shared_ptr<TlsContext> ctx(new TlsContext());
  ctx->role_ = role;
  ctx->options_ = options;
  ctx->bundle_ = std::move(bundle);
  mbedtls_ssl_config* conf = &ctx->conf_;
  mbedtls_ssl_config_init(conf);
  ctx->conf_initialized_ = true;

  int ret = mbedtls_ssl_config_defaults(conf, role == Role::server ? MBEDTLS_SSL_IS_SERVER : MBEDTLS_SSL_IS_CLIENT,
                                        MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
  if (ret != 0) return set_error("mbedtls_ssl_config_defaults failed (" + code_str(ret) + ")");

  mbedtls_ssl_conf_min_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_3);
  mbedtls_ssl_conf_max_tls_version(conf, MBEDTLS_SSL_VERSION_TLS1_3);
  mbedtls_ssl_conf_ciphersuites(conf, kCiphersuites);
  mbedtls_ssl_conf_groups(conf, kGroups);
  mbedtls_ssl_conf_tls13_key_exchange_modes(conf, MBEDTLS_SSL_TLS1_3_KEY_EXCHANGE_MODE_ALL);
  mbedtls_ssl_conf_authmode(conf, role == Role::server && !options.request_client_cert ? MBEDTLS_SSL_VERIFY_NONE
                                                                                       : MBEDTLS_SSL_VERIFY_REQUIRED);
  // The PSA RNG: one process-wide CTR_DRBG behind a mutex (MBEDTLS_THREADING_C
  // + PTHREAD in Debian's build), so a config shared by worker threads is safe.
  mbedtls_ssl_conf_rng(conf, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);

  const certwatch::CertBundle& b = *ctx->bundle_;
  ret = mbedtls_ssl_conf_own_cert(conf, b.cert_chain(), b.key());
  if (ret != 0) return set_error("cannot use the node certificate/key (" + code_str(ret) + ")");
  // tls.ca_bundle and every peer's own anchors: which anchor may speak for
  // which peer is checked after the handshake (policy, egress pools).
  mbedtls_ssl_conf_ca_chain(conf, b.trust_store(), b.crl());

  if (role == Role::server) {
    if (options.session_tickets) {
      auto sealer = TicketSealer::create(options.ticket_lifetime_s);
      if (!sealer) return sealer.error();
      ctx->sealer_ = std::move(sealer).value();
      mbedtls_ssl_conf_session_tickets_cb(conf, TicketSealer::write_cb, TicketSealer::parse_cb,
                                          ctx->sealer_.get());
      mbedtls_ssl_conf_new_session_tickets(conf, 1);
    } else {
      mbedtls_ssl_conf_new_session_tickets(conf, 0);
    }
  } else {
    mbedtls_ssl_conf_session_tickets(conf, options.session_tickets ? MBEDTLS_SSL_SESSION_TICKETS_ENABLED
                                                                   : MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
    mbedtls_ssl_conf_tls13_enable_signal_new_session_tickets(
        conf, options.session_tickets ? MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_ENABLED
                                      : MBEDTLS_SSL_TLS1_3_SIGNAL_NEW_SESSION_TICKETS_DISABLED);
  }
  return std::shared_ptr<const TlsContext>(std::move(ctx));
}

TlsContext::~TlsContext() {
  if (conf_initialized_) mbedtls_ssl_config_free(&conf_);
}

}  // namespace fedproxy::tls

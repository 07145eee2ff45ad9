// tls_ceiling: the mbedTLS ceilings the comparison harness (compare.py)
// divides fedproxy's figures by. NOT a test: it asserts nothing and prints JSON.
//
// Single-threaded, in memory (no sockets, no syscalls on the data path), with
// the same ECDSA P-256 certificates as the harness (--ca/--server-*/--client-*)
// or, without them, a generated P-256 PKI (tests/support/test_pki):
//
//   handshake.full     server CPU (and client CPU) per full mTLS 1.3 handshake:
//                      fedproxy's own TlsContext/TlsEngine on both sides, so the
//                      server pays what the ingress pays (ECDHE, CertificateVerify
//                      signature, client chain verification, identity capture,
//                      the sealed session ticket) and the client what the egress
//                      pays. Engine construction and destruction are included.
//   handshake.resumed  the same with the previous connection's ticket offered
//                      (psk_dhe_ke, as fedproxy's egress does); the newest
//                      ticket is offered each time, as the egress pool does.
//   aead.<suite>       full application records (16383 bytes of plaintext: the
//                      largest TLS 1.3 record mbedTLS 3.6 writes, one record per
//                      write), one suite forced by a bare mbedTLS client (the
//                      server is fedproxy's TlsEngine):
//                        record_seal / record_open   mbedtls_ssl_write / _read
//                        engine_seal / engine_open   TlsEngine::write / ::read on
//                                                    the server (what fedproxy runs,
//                                                    its buffer copies included)
//                        cipher_seal / cipher_open   mbedtls_cipher_auth_{en,de}crypt_ext
//                                                    of 16 KiB (the primitive alone)
//                      MB/s of plaintext, MB = 10^6 bytes.
//
// CPU time is CLOCK_THREAD_CPUTIME_ID around each side's calls. Every figure is
// measured --reps times (each at least --min-seconds) and reported as
// median/min/max. Pin it with taskset to the CPU the proxies run on.
//
//   ninja -C build-bench tests/bench/tls_ceiling
//   taskset -c 0 build-bench/tests/bench/tls_ceiling --reps 3 --min-seconds 0.5
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

// mbedTLS 3.6.6's psa_util.h lacks the extern "C" guard its other headers have.
extern "C" {
#include <mbedtls/psa_util.h>
}
#include <mbedtls/cipher.h>
#include <mbedtls/ssl.h>
#include <mbedtls/ssl_ciphersuites.h>
#include <mbedtls/version.h>

#include "proxy/tls/tls_context.hpp"
#include "proxy/tls/tls_engine.hpp"
#include "tests/support/test_pki.hpp"

using namespace fedproxy;
using Status = tls::TlsEngine::Status;

namespace {

double thread_cpu() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

double wall() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Adds the CPU time of its scope to *acc.
class CpuScope {
 public:
  explicit CpuScope(double& acc) : acc_(acc), t0_(thread_cpu()) {}
  ~CpuScope() { acc_ += thread_cpu() - t0_; }
  CpuScope(const CpuScope&) = delete;
  CpuScope& operator=(const CpuScope&) = delete;

 private:
  double& acc_;
  double t0_;
};

struct Stat {
  double median = 0, min = 0, max = 0;
};

Stat summarize(std::vector<double> v) {
  Stat s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.min = v.front();
  s.max = v.back();
  size_t n = v.size();
  s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return s;
}

std::string stat_json(const Stat& s, int prec = 1) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "{\"median\": %.*f, \"min\": %.*f, \"max\": %.*f}", prec, s.median, prec, s.min,
                prec, s.max);
  return buf;
}

struct Session {
  mbedtls_ssl_session s;
  Session() { mbedtls_ssl_session_init(&s); }
  ~Session() { mbedtls_ssl_session_free(&s); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
};

// --- handshakes ------------------------------------------------------------------

struct HsCost {
  double server = 0, client = 0;  // CPU seconds
  bool resumed = false;
};

// One connection between fedproxy's own client and server engines.
HsCost handshake_once(const std::shared_ptr<const tls::TlsContext>& sctx,
                      const std::shared_ptr<const tls::TlsContext>& cctx, const mbedtls_ssl_session* offer,
                      Session* save) {
  HsCost c;
  std::unique_ptr<tls::TlsEngine> server, client;
  {
    CpuScope t(c.server);
    server = std::make_unique<tls::TlsEngine>(sctx);
  }
  {
    CpuScope t(c.client);
    client = std::make_unique<tls::TlsEngine>(cctx);
    if (offer != nullptr) client->set_session(offer);
  }
  Status cs = Status::want_io, ss = Status::want_io;
  std::string c2s, s2c;
  for (int i = 0; i < 64; ++i) {
    {
      CpuScope t(c.client);
      if (!s2c.empty()) client->feed(s2c.data(), s2c.size());
      if (!client->handshake_done()) cs = client->handshake();
      c2s = client->take_output();
    }
    {
      CpuScope t(c.server);
      if (!c2s.empty()) server->feed(c2s.data(), c2s.size());
      if (!server->handshake_done()) ss = server->handshake();
      s2c = server->take_output();
    }
    if (cs == Status::error || ss == Status::error) {
      throw std::runtime_error("handshake failed: client '" + client->error_reason() + "', server '" +
                               server->error_reason() + "'");
    }
    if (client->handshake_done() && server->handshake_done() && c2s.empty()) break;
  }
  if (!client->handshake_done() || !server->handshake_done()) throw std::runtime_error("handshake stuck");
  {
    // The server's NewSessionTicket (written inside its handshake) reaches the
    // client, which keeps the session for the next connection (the egress pool).
    CpuScope t(c.client);
    if (!s2c.empty()) client->feed(s2c.data(), s2c.size());
    std::string sink;
    if (client->read(sink) == Status::error) throw std::runtime_error("client read: " + client->error_reason());
    if (save != nullptr) client->save_session(&save->s);
  }
  c.resumed = server->resumed();
  {
    CpuScope t(c.server);
    server.reset();
  }
  {
    CpuScope t(c.client);
    client.reset();
  }
  return c;
}

struct HsFigures {
  Stat server_us, client_us;
  long count = 0;
  bool all_resumed = true, none_resumed = true;
};

HsFigures measure_handshakes(const std::shared_ptr<const tls::TlsContext>& sctx,
                             const std::shared_ptr<const tls::TlsContext>& cctx, bool resume, int reps,
                             double min_seconds) {
  HsFigures f;
  std::vector<double> sv, cv;
  Session sessions[2];
  int cur = 0;
  if (resume) handshake_once(sctx, cctx, nullptr, &sessions[cur]);  // the first ticket
  for (int r = 0; r < reps; ++r) {
    double s = 0, c = 0;
    long n = 0;
    const double end = wall() + min_seconds;
    while (n < 10 || wall() < end) {
      HsCost k;
      if (resume) {
        k = handshake_once(sctx, cctx, &sessions[cur].s, &sessions[1 - cur]);
        cur = 1 - cur;
      } else {
        k = handshake_once(sctx, cctx, nullptr, nullptr);
      }
      s += k.server;
      c += k.client;
      f.all_resumed = f.all_resumed && k.resumed;
      f.none_resumed = f.none_resumed && !k.resumed;
      ++n;
    }
    sv.push_back(s / static_cast<double>(n) * 1e6);
    cv.push_back(c / static_cast<double>(n) * 1e6);
    f.count += n;
  }
  f.server_us = summarize(sv);
  f.client_us = summarize(cv);
  return f;
}

// --- a bare client with one forced suite, for the record layer --------------------

class SuiteClient {
 public:
  SuiteClient(const certwatch::CertBundle& own, int suite) {
    suites_[0] = suite;
    suites_[1] = 0;
    mbedtls_ssl_config_init(&conf_);
    mbedtls_ssl_init(&ssl_);
    if (mbedtls_ssl_config_defaults(&conf_, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_STREAM,
                                    MBEDTLS_SSL_PRESET_DEFAULT) != 0) {
      throw std::runtime_error("config defaults");
    }
    mbedtls_ssl_conf_min_tls_version(&conf_, MBEDTLS_SSL_VERSION_TLS1_3);
    mbedtls_ssl_conf_max_tls_version(&conf_, MBEDTLS_SSL_VERSION_TLS1_3);
    mbedtls_ssl_conf_ciphersuites(&conf_, suites_);
    mbedtls_ssl_conf_rng(&conf_, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE);
    mbedtls_ssl_conf_authmode(&conf_, MBEDTLS_SSL_VERIFY_REQUIRED);
    mbedtls_ssl_conf_ca_chain(&conf_, own.ca_chain(), nullptr);
    mbedtls_ssl_conf_own_cert(&conf_, own.cert_chain(), own.key());
    mbedtls_ssl_conf_session_tickets(&conf_, MBEDTLS_SSL_SESSION_TICKETS_DISABLED);
    if (mbedtls_ssl_setup(&ssl_, &conf_) != 0) throw std::runtime_error("ssl setup");
    mbedtls_ssl_set_hostname(&ssl_, nullptr);
    mbedtls_ssl_set_bio(&ssl_, this, &SuiteClient::send_cb, &SuiteClient::recv_cb, nullptr);
  }
  ~SuiteClient() {
    mbedtls_ssl_free(&ssl_);
    mbedtls_ssl_config_free(&conf_);
  }
  SuiteClient(const SuiteClient&) = delete;
  SuiteClient& operator=(const SuiteClient&) = delete;

  mbedtls_ssl_context* ssl() { return &ssl_; }
  void feed(const std::string& s) {
    if (in_pos_ == in_.size()) {
      in_.clear();
      in_pos_ = 0;
    }
    in_ += s;
  }
  std::string take_output() {
    std::string o;
    o.swap(out_);
    return o;
  }
  bool input_empty() const { return in_pos_ == in_.size(); }

 private:
  static int send_cb(void* ctx, const unsigned char* buf, size_t len) {
    static_cast<SuiteClient*>(ctx)->out_.append(reinterpret_cast<const char*>(buf), len);
    return static_cast<int>(len);
  }
  static int recv_cb(void* ctx, unsigned char* buf, size_t len) {
    auto* self = static_cast<SuiteClient*>(ctx);
    size_t avail = self->in_.size() - self->in_pos_;
    if (avail == 0) return MBEDTLS_ERR_SSL_WANT_READ;
    size_t n = std::min(avail, len);
    std::memcpy(buf, self->in_.data() + self->in_pos_, n);
    self->in_pos_ += n;
    return static_cast<int>(n);
  }
  int suites_[2];
  mbedtls_ssl_config conf_;
  mbedtls_ssl_context ssl_;
  std::string in_;
  size_t in_pos_ = 0;
  std::string out_;
};

constexpr size_t kRecord = 16384;
constexpr int kBatch = 64;  // records per batch: 1 MiB of plaintext

struct AeadFigures {
  Stat record_seal, record_open, engine_seal, engine_open, cipher_seal, cipher_open;
  double wire_bytes_per_write = 0;  // ciphertext bytes per record written
  size_t record_plaintext = 0;      // plaintext bytes per record
};

double mbps(double bytes, double seconds) { return seconds > 0 ? bytes / seconds / 1e6 : 0; }

void connect_suite(tls::TlsEngine& server, SuiteClient& client, int suite) {
  for (int i = 0; i < 64; ++i) {
    int r = mbedtls_ssl_handshake(client.ssl());
    if (r != 0 && r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE) {
      throw std::runtime_error("suite client handshake failed");
    }
    std::string c2s = client.take_output();
    if (!c2s.empty()) server.feed(c2s.data(), c2s.size());
    if (!server.handshake_done() && server.handshake() == Status::error) {
      throw std::runtime_error("server handshake failed: " + server.error_reason());
    }
    std::string s2c = server.take_output();
    if (!s2c.empty()) client.feed(s2c);
    if (r == 0 && server.handshake_done() && c2s.empty() && s2c.empty()) break;
  }
  if (!server.handshake_done()) throw std::runtime_error("suite handshake stuck");
  if (mbedtls_ssl_get_ciphersuite_id_from_ssl(client.ssl()) != suite) {
    throw std::runtime_error("the forced suite was not negotiated");
  }
}

AeadFigures measure_record_layer(const std::shared_ptr<const tls::TlsContext>& sctx,
                                 const certwatch::CertBundle& client_bundle, int suite, int reps,
                                 double min_seconds) {
  tls::TlsEngine server(sctx);
  SuiteClient client(client_bundle, suite);
  connect_suite(server, client, suite);
  // One full record per write: mbedTLS 3.6 caps a TLS 1.3 record at 16383
  // bytes of plaintext (the inner content type byte counts against its 16 KiB
  // buffer), so a 16384-byte write would also send a 1-byte record.
  const int maxp = mbedtls_ssl_get_max_out_record_payload(client.ssl());
  const size_t rec = maxp > 0 ? static_cast<size_t>(maxp) : kRecord - 1;
  const size_t batch_bytes = kBatch * rec;
  std::string plain(rec, 'x');
  std::vector<unsigned char> rbuf(kRecord);
  std::string sink;
  sink.reserve(batch_bytes);
  std::vector<double> rs, ro, es, eo;
  double wire_per_write = 0;
  for (int r = 0; r < reps; ++r) {
    // server -> client: TlsEngine::write (engine_seal), mbedtls_ssl_read (record_open)
    double t_es = 0, t_ro = 0, bytes = 0;
    double end = wall() + min_seconds;
    while (bytes == 0 || wall() < end) {
      std::string ct;
      {
        CpuScope t(t_es);
        for (int i = 0; i < kBatch; ++i) {
          if (server.write(plain.data(), plain.size()) != Status::ok) throw std::runtime_error("engine write");
        }
        ct = server.take_output();
      }
      wire_per_write = static_cast<double>(ct.size()) / kBatch;
      client.feed(ct);
      {
        CpuScope t(t_ro);
        size_t got = 0;
        while (got < batch_bytes) {
          int n = mbedtls_ssl_read(client.ssl(), rbuf.data(), rbuf.size());
          if (n == MBEDTLS_ERR_SSL_RECEIVED_NEW_SESSION_TICKET) continue;
          if (n <= 0) throw std::runtime_error("record read");
          got += static_cast<size_t>(n);
        }
      }
      bytes += static_cast<double>(batch_bytes);
    }
    es.push_back(mbps(bytes, t_es));
    ro.push_back(mbps(bytes, t_ro));

    // client -> server: mbedtls_ssl_write (record_seal), TlsEngine::read (engine_open)
    double t_rs = 0, t_eo = 0;
    bytes = 0;
    end = wall() + min_seconds;
    while (bytes == 0 || wall() < end) {
      std::string ct;
      {
        CpuScope t(t_rs);
        for (int i = 0; i < kBatch; ++i) {
          size_t off = 0;
          while (off < rec) {
            int n = mbedtls_ssl_write(client.ssl(), reinterpret_cast<const unsigned char*>(plain.data()) + off,
                                      rec - off);
            if (n <= 0) throw std::runtime_error("record write");
            off += static_cast<size_t>(n);
          }
        }
        ct = client.take_output();
      }
      {
        CpuScope t(t_eo);
        server.feed(ct.data(), ct.size());
        sink.clear();
        if (server.read(sink) != Status::ok) throw std::runtime_error("engine read: " + server.error_reason());
      }
      if (sink.size() != batch_bytes) throw std::runtime_error("engine read: short");
      bytes += static_cast<double>(batch_bytes);
    }
    rs.push_back(mbps(bytes, t_rs));
    eo.push_back(mbps(bytes, t_eo));
  }
  AeadFigures f;
  f.record_seal = summarize(rs);
  f.record_open = summarize(ro);
  f.engine_seal = summarize(es);
  f.engine_open = summarize(eo);
  f.wire_bytes_per_write = wire_per_write;
  f.record_plaintext = rec;
  return f;
}

void measure_cipher(mbedtls_cipher_type_t type, int reps, double min_seconds, AeadFigures& f) {
  const mbedtls_cipher_info_t* info = mbedtls_cipher_info_from_type(type);
  if (info == nullptr) throw std::runtime_error("cipher not available");
  const int keybits = static_cast<int>(mbedtls_cipher_info_get_key_bitlen(info));
  unsigned char key[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                           17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
  unsigned char iv[12] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};
  unsigned char ad[5] = {23, 3, 3, 0x40, 0x11};  // a TLS 1.3 record header
  mbedtls_cipher_context_t enc, dec;
  mbedtls_cipher_init(&enc);
  mbedtls_cipher_init(&dec);
  if (mbedtls_cipher_setup(&enc, info) != 0 || mbedtls_cipher_setup(&dec, info) != 0 ||
      mbedtls_cipher_setkey(&enc, key, keybits, MBEDTLS_ENCRYPT) != 0 ||
      mbedtls_cipher_setkey(&dec, key, keybits, MBEDTLS_DECRYPT) != 0) {
    throw std::runtime_error("cipher setup");
  }
  std::vector<unsigned char> in(kRecord, 'x'), ct(kRecord + 16), out(kRecord);
  std::vector<double> sv, ov;
  for (int r = 0; r < reps; ++r) {
    double ts = 0, to = 0, bytes = 0;
    const double end = wall() + min_seconds;
    while (bytes == 0 || wall() < end) {
      size_t olen = 0;
      {
        CpuScope t(ts);
        for (int i = 0; i < kBatch; ++i) {
          iv[11] = static_cast<unsigned char>(i);
          if (mbedtls_cipher_auth_encrypt_ext(&enc, iv, sizeof iv, ad, sizeof ad, in.data(), in.size(), ct.data(),
                                              ct.size(), &olen, 16) != 0) {
            throw std::runtime_error("auth_encrypt");
          }
        }
      }
      {
        CpuScope t(to);
        for (int i = 0; i < kBatch; ++i) {
          // the last ciphertext, decrypted kBatch times (same work per call)
          size_t plen = 0;
          if (mbedtls_cipher_auth_decrypt_ext(&dec, iv, sizeof iv, ad, sizeof ad, ct.data(), olen, out.data(),
                                              out.size(), &plen, 16) != 0) {
            throw std::runtime_error("auth_decrypt");
          }
        }
      }
      bytes += kBatch * kRecord;
    }
    sv.push_back(mbps(bytes, ts));
    ov.push_back(mbps(bytes, to));
  }
  mbedtls_cipher_free(&enc);
  mbedtls_cipher_free(&dec);
  f.cipher_seal = summarize(sv);
  f.cipher_open = summarize(ov);
}

struct Suite {
  const char* iana;
  int id;
  mbedtls_cipher_type_t cipher;
};

const Suite kSuites[] = {
    {"TLS_AES_128_GCM_SHA256", MBEDTLS_TLS1_3_AES_128_GCM_SHA256, MBEDTLS_CIPHER_AES_128_GCM},
    {"TLS_AES_256_GCM_SHA384", MBEDTLS_TLS1_3_AES_256_GCM_SHA384, MBEDTLS_CIPHER_AES_256_GCM},
    {"TLS_CHACHA20_POLY1305_SHA256", MBEDTLS_TLS1_3_CHACHA20_POLY1305_SHA256, MBEDTLS_CIPHER_CHACHA20_POLY1305},
};

void usage() {
  std::fprintf(stderr,
               "usage: tls_ceiling [--reps N] [--min-seconds S] [--only handshake|aead]\n"
               "                   [--ca F --server-cert F --server-key F --client-cert F --client-key F]\n"
               "Prints JSON on stdout. Without the PEM files a P-256 test PKI is generated.\n");
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 3;
  double min_seconds = 0.5;
  std::string only;
  certwatch::CertFiles server_files, client_files;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        usage();
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--reps") {
      reps = std::max(1, std::atoi(next().c_str()));
    } else if (a == "--min-seconds") {
      min_seconds = std::max(0.01, std::atof(next().c_str()));
    } else if (a == "--only") {
      only = next();
    } else if (a == "--ca") {
      server_files.ca_bundle = client_files.ca_bundle = next();
    } else if (a == "--server-cert") {
      server_files.cert = next();
    } else if (a == "--server-key") {
      server_files.key = next();
    } else if (a == "--client-cert") {
      client_files.cert = next();
    } else if (a == "--client-key") {
      client_files.key = next();
    } else {
      usage();
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  try {
    if (!tls::init_crypto()) throw std::runtime_error("PSA crypto init failed");
    std::unique_ptr<testing::TempDir> dir;
    std::shared_ptr<const certwatch::CertBundle> sb, cb;
    std::string pki = "files";
    if (server_files.cert.empty()) {
      pki = "generated P-256";
      dir = std::make_unique<testing::TempDir>();
      testing::TestCa ca("tls_ceiling CA");
      testing::CertSpec s;
      s.subject = "CN=ingress,O=partner-labs";
      s.uri_sans = {"spiffe://partner-labs.example/nodes/primary"};
      s.dns_sans = {"localhost"};
      testing::CertSpec c;
      c.subject = "CN=egress,O=acme";
      c.uri_sans = {"spiffe://acme.example/nodes/a"};
      sb = testing::make_bundle(*dir, "server", ca.issue(s), ca.cert_pem());
      cb = testing::make_bundle(*dir, "client", ca.issue(c), ca.cert_pem());
    } else {
      std::string err;
      sb = testing::load_bundle(server_files, &err);
      if (!sb) throw std::runtime_error("server bundle: " + err);
      cb = testing::load_bundle(client_files, &err);
      if (!cb) throw std::runtime_error("client bundle: " + err);
    }
    auto sctx_r = tls::TlsContext::create(tls::Role::server, sb, tls::TlsOptions{});
    if (!sctx_r) throw std::runtime_error("server context: " + sctx_r.message());
    auto cctx_r = tls::TlsContext::create(tls::Role::client, cb, tls::TlsOptions{});
    if (!cctx_r) throw std::runtime_error("client context: " + cctx_r.message());
    auto sctx = std::move(sctx_r).value();
    auto cctx = std::move(cctx_r).value();

    std::string out = "{\n";
    out += "  \"mbedtls\": \"" MBEDTLS_VERSION_STRING "\",\n";
    out += "  \"pki\": \"" + pki + "\",\n";
    out += "  \"reps\": " + std::to_string(reps) + ",\n";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", min_seconds);
    out += "  \"min_seconds\": " + std::string(buf) + ",\n";
    out += "  \"record_bytes\": " + std::to_string(kRecord) + ",\n";
    if (only.empty() || only == "handshake") {
      HsFigures full = measure_handshakes(sctx, cctx, false, reps, min_seconds);
      HsFigures res = measure_handshakes(sctx, cctx, true, reps, min_seconds);
      if (!full.none_resumed) throw std::runtime_error("a full handshake resumed");
      if (!res.all_resumed) throw std::runtime_error("a resumed handshake did not resume");
      out += "  \"handshake\": {\n";
      out += "    \"full\": {\"server_cpu_us\": " + stat_json(full.server_us) +
             ", \"client_cpu_us\": " + stat_json(full.client_us) + ", \"count\": " + std::to_string(full.count) +
             "},\n";
      out += "    \"resumed\": {\"server_cpu_us\": " + stat_json(res.server_us) +
             ", \"client_cpu_us\": " + stat_json(res.client_us) + ", \"count\": " + std::to_string(res.count) +
             "}\n";
      out += "  }";
    }
    if (only.empty() || only == "aead") {
      if (only.empty()) out += ",\n";
      out += "  \"aead\": {\n";
      for (size_t i = 0; i < std::size(kSuites); ++i) {
        const Suite& s = kSuites[i];
        AeadFigures f = measure_record_layer(sctx, *cb, s.id, reps, min_seconds);
        measure_cipher(s.cipher, reps, min_seconds, f);
        out += std::string("    \"") + s.iana + "\": {";
        out += "\"record_seal_MBps\": " + stat_json(f.record_seal) + ", ";
        out += "\"record_open_MBps\": " + stat_json(f.record_open) + ", ";
        out += "\"engine_seal_MBps\": " + stat_json(f.engine_seal) + ", ";
        out += "\"engine_open_MBps\": " + stat_json(f.engine_open) + ", ";
        out += "\"cipher_seal_MBps\": " + stat_json(f.cipher_seal) + ", ";
        out += "\"cipher_open_MBps\": " + stat_json(f.cipher_open) + ", ";
        out += "\"record_plaintext_bytes\": " + std::to_string(f.record_plaintext) + ", ";
        out += "\"record_wire_bytes\": " + std::to_string(static_cast<long>(f.wire_bytes_per_write)) + "}";
        out += i + 1 < std::size(kSuites) ? ",\n" : "\n";
      }
      out += "  }";
    }
    out += "\n}\n";
    std::fputs(out.c_str(), stdout);
    return 0;
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "tls_ceiling: %s\n", ex.what());
    return 1;
  }
}

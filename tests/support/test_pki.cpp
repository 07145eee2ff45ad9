#include "tests/support/test_pki.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <mutex>
#include <stdexcept>

#include <mbedtls/asn1.h>
#include <mbedtls/ecp.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
// mbedTLS 3.6.6's psa_util.h lacks the extern "C" guard its other headers have.
extern "C" {
#include <mbedtls/psa_util.h>
}
#include <mbedtls/rsa.h>
#include <mbedtls/x509_crt.h>
#include <psa/crypto.h>

#include "proxy/base/result.hpp"

namespace fedproxy::testing {

namespace {

void check(int ret, const char* what) {
  if (ret != 0) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s failed: -0x%04X", what, static_cast<unsigned>(-ret));
    throw std::runtime_error(buf);
  }
}

void ensure_psa() {
  if (psa_crypto_init() != PSA_SUCCESS) throw std::runtime_error("psa_crypto_init failed");
}

// RAII wrapper for a parsed private key.
struct Pk {
  mbedtls_pk_context ctx;
  Pk() { mbedtls_pk_init(&ctx); }
  ~Pk() { mbedtls_pk_free(&ctx); }
  Pk(const Pk&) = delete;
  Pk& operator=(const Pk&) = delete;
  void parse(const std::string& pem) {
    check(mbedtls_pk_parse_key(&ctx, reinterpret_cast<const unsigned char*>(pem.c_str()), pem.size() + 1,
                               nullptr, 0, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE),
          "mbedtls_pk_parse_key");
  }
};

std::string fresh_key_pem(KeyType type) {
  ensure_psa();
  Pk pk;
  if (type == KeyType::p256 || type == KeyType::p384) {
    check(mbedtls_pk_setup(&pk.ctx, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)), "pk_setup");
    check(mbedtls_ecp_gen_key(type == KeyType::p256 ? MBEDTLS_ECP_DP_SECP256R1 : MBEDTLS_ECP_DP_SECP384R1,
                              mbedtls_pk_ec(pk.ctx), mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE),
          "ecp_gen_key");
  } else {
    check(mbedtls_pk_setup(&pk.ctx, mbedtls_pk_info_from_type(MBEDTLS_PK_RSA)), "pk_setup");
    check(mbedtls_rsa_gen_key(mbedtls_pk_rsa(pk.ctx), mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE,
                              type == KeyType::rsa2048 ? 2048 : 1024, 65537),
          "rsa_gen_key");
  }
  unsigned char buf[16000];
  check(mbedtls_pk_write_key_pem(&pk.ctx, buf, sizeof buf), "pk_write_key_pem");
  return reinterpret_cast<const char*>(buf);
}

std::string x509_time(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm {};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S", &tm);
  return buf;
}

std::atomic<uint32_t> g_serial{0x1000};

void remove_tree(const std::string& path) {
  DIR* d = ::opendir(path.c_str());
  if (d != nullptr) {
    while (dirent* e = ::readdir(d)) {
      if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
      std::string child = path + "/" + e->d_name;
      struct stat st {};
      if (::lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        remove_tree(child);
      } else {
        ::unlink(child.c_str());
      }
    }
    ::closedir(d);
  }
  ::rmdir(path.c_str());
}

// Runs a shell command quietly (FEDPROXY_TEST_VERBOSE=1 shows its output).
int run(const std::string& cmd) {
  const bool verbose = std::getenv("FEDPROXY_TEST_VERBOSE") != nullptr;
  return std::system((cmd + (verbose ? "" : " >/dev/null 2>&1")).c_str());
}

std::optional<std::string> slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// Signs a certificate for subject_key by issuer (self-signed when same).
std::string write_cert(const CertSpec& spec, const std::string& subject_key_pem, const std::string& issuer_name,
                       const std::string& issuer_key_pem, std::string* serial_hex) {
  ensure_psa();
  Pk subject_key, issuer_key;
  subject_key.parse(subject_key_pem);
  issuer_key.parse(issuer_key_pem);

  mbedtls_x509write_cert crt;
  mbedtls_x509write_crt_init(&crt);
  struct Guard {
    mbedtls_x509write_cert* c;
    ~Guard() { mbedtls_x509write_crt_free(c); }
  } guard{&crt};

  mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
  mbedtls_x509write_crt_set_subject_key(&crt, &subject_key.ctx);
  mbedtls_x509write_crt_set_issuer_key(&crt, &issuer_key.ctx);
  check(mbedtls_x509write_crt_set_subject_name(&crt, spec.subject.c_str()), "set_subject_name");
  check(mbedtls_x509write_crt_set_issuer_name(&crt, issuer_name.c_str()), "set_issuer_name");

  uint32_t serial = g_serial.fetch_add(1);
  // DER INTEGER: minimal encoding (OpenSSL rejects leading zero bytes),
  // positive (serials stay below 0x80000000).
  unsigned char serial_raw[4] = {static_cast<unsigned char>(serial >> 24), static_cast<unsigned char>(serial >> 16),
                                 static_cast<unsigned char>(serial >> 8), static_cast<unsigned char>(serial)};
  size_t skip = 0;
  while (skip < 3 && serial_raw[skip] == 0 && (serial_raw[skip + 1] & 0x80) == 0) ++skip;
  check(mbedtls_x509write_crt_set_serial_raw(&crt, serial_raw + skip, sizeof serial_raw - skip), "set_serial_raw");
  if (serial_hex != nullptr) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08X", serial);
    *serial_hex = buf;
  }

  const int64_t now = now_unix();
  const int64_t nb = spec.not_before != 0 ? spec.not_before : now - 3600;
  const int64_t na = spec.not_after != 0 ? spec.not_after : now + 86400;
  check(mbedtls_x509write_crt_set_validity(&crt, x509_time(nb).c_str(), x509_time(na).c_str()), "set_validity");

  check(mbedtls_x509write_crt_set_basic_constraints(&crt, spec.is_ca ? 1 : 0, -1), "basic_constraints");
  check(mbedtls_x509write_crt_set_subject_key_identifier(&crt), "skid");
  check(mbedtls_x509write_crt_set_authority_key_identifier(&crt), "akid");
  if (spec.is_ca) {
    check(mbedtls_x509write_crt_set_key_usage(&crt, MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN),
          "key_usage");
  } else {
    unsigned int ku = MBEDTLS_X509_KU_DIGITAL_SIGNATURE;
    if (spec.key_type == KeyType::rsa2048 || spec.key_type == KeyType::rsa1024) ku |= MBEDTLS_X509_KU_KEY_ENCIPHERMENT;
    check(mbedtls_x509write_crt_set_key_usage(&crt, ku), "key_usage");

    // extendedKeyUsage
    mbedtls_asn1_sequence eku[2];
    std::memset(eku, 0, sizeof eku);
    int n = 0;
    if (spec.server_auth) {
      eku[n].buf.tag = MBEDTLS_ASN1_OID;
      eku[n].buf.p = reinterpret_cast<unsigned char*>(const_cast<char*>(MBEDTLS_OID_SERVER_AUTH));
      eku[n].buf.len = MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH);
      ++n;
    }
    if (spec.client_auth) {
      eku[n].buf.tag = MBEDTLS_ASN1_OID;
      eku[n].buf.p = reinterpret_cast<unsigned char*>(const_cast<char*>(MBEDTLS_OID_CLIENT_AUTH));
      eku[n].buf.len = MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH);
      ++n;
    }
    if (n == 2) eku[0].next = &eku[1];
    if (n > 0) check(mbedtls_x509write_crt_set_ext_key_usage(&crt, eku), "ext_key_usage");
  }

  // subjectAltName: URIs then DNS names.
  std::vector<mbedtls_x509_san_list> sans(spec.uri_sans.size() + spec.dns_sans.size());
  size_t i = 0;
  for (const auto& u : spec.uri_sans) {
    std::memset(&sans[i], 0, sizeof sans[i]);
    sans[i].node.type = MBEDTLS_X509_SAN_UNIFORM_RESOURCE_IDENTIFIER;
    sans[i].node.san.unstructured_name.p = reinterpret_cast<unsigned char*>(const_cast<char*>(u.data()));
    sans[i].node.san.unstructured_name.len = u.size();
    ++i;
  }
  for (const auto& d : spec.dns_sans) {
    std::memset(&sans[i], 0, sizeof sans[i]);
    sans[i].node.type = MBEDTLS_X509_SAN_DNS_NAME;
    sans[i].node.san.unstructured_name.p = reinterpret_cast<unsigned char*>(const_cast<char*>(d.data()));
    sans[i].node.san.unstructured_name.len = d.size();
    ++i;
  }
  // mbedtls x509write emits the SAN list in reverse order: link it backwards
  // so the certificate carries the names in spec order.
  for (size_t j = 1; j < sans.size(); ++j) sans[j].next = &sans[j - 1];
  if (!sans.empty()) check(mbedtls_x509write_crt_set_subject_alternative_name(&crt, &sans.back()), "set_san");

  if (spec.grant_id) {
    // 1.3.6.1.4.1.99999.1, value: UTF8String.
    static const char kOid[] = "\x2B\x06\x01\x04\x01\x86\x8D\x1F\x01";
    const std::string& g = *spec.grant_id;
    std::string val;
    val.push_back(static_cast<char>(MBEDTLS_ASN1_UTF8_STRING));
    if (g.size() < 128) {
      val.push_back(static_cast<char>(g.size()));
    } else {
      val.push_back(static_cast<char>(0x82));
      val.push_back(static_cast<char>(g.size() >> 8));
      val.push_back(static_cast<char>(g.size() & 0xff));
    }
    val += g;
    check(mbedtls_x509write_crt_set_extension(&crt, kOid, sizeof kOid - 1, spec.grant_critical ? 1 : 0,
                                              reinterpret_cast<const unsigned char*>(val.data()), val.size()),
          "set_extension");
  }

  unsigned char out[16000];
  check(mbedtls_x509write_crt_pem(&crt, out, sizeof out, mbedtls_psa_get_random, MBEDTLS_PSA_RANDOM_STATE),
        "x509write_crt_pem");
  return reinterpret_cast<const char*>(out);
}

}  // namespace

int64_t now_unix() { return static_cast<int64_t>(std::time(nullptr)); }

std::string generate_key_pem(KeyType type) {
  if (type == KeyType::p256 || type == KeyType::p384) return fresh_key_pem(type);
  static std::mutex mu;
  static std::map<KeyType, std::string> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(type);
  if (it != cache.end()) return it->second;
  return cache[type] = fresh_key_pem(type);
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/fedproxy-test-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() { remove_tree(path_); }

std::string TempDir::write(const std::string& name, const std::string& content, mode_t mode) const {
  std::string p = path_ + "/" + name;
  ::unlink(p.c_str());
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw std::runtime_error("cannot create " + p);
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(fd, content.data() + off, content.size() - off);
    if (n <= 0) {
      ::close(fd);
      throw std::runtime_error("cannot write " + p);
    }
    off += static_cast<size_t>(n);
  }
  ::fchmod(fd, mode);  // not subject to the umask
  ::close(fd);
  return p;
}

TestCa::TestCa(const std::string& cn, KeyType key_type) {
  subject_ = "CN=" + cn + ",O=fedproxy-test";
  key_pem_ = generate_key_pem(key_type);
  CertSpec spec;
  spec.subject = subject_;
  spec.is_ca = true;
  spec.key_type = key_type;
  spec.not_before = now_unix() - 86400;
  spec.not_after = now_unix() + 10 * 86400;
  cert_pem_ = write_cert(spec, key_pem_, subject_, key_pem_, nullptr);
}

Issued TestCa::issue(const CertSpec& spec) const {
  Issued out;
  out.key_pem = !spec.key_pem.empty() ? spec.key_pem : generate_key_pem(spec.key_type);
  out.cert_pem = write_cert(spec, out.key_pem, subject_, key_pem_, &out.serial_hex);
  return out;
}

certwatch::CertFiles write_node_files(const TempDir& dir, const std::string& prefix, const Issued& node,
                                      const std::string& ca_bundle_pem, const std::string& crl_pem) {
  certwatch::CertFiles f;
  f.cert = dir.write(prefix + ".crt", node.cert_pem, 0644);
  f.key = dir.write(prefix + ".key", node.key_pem, 0600);
  f.ca_bundle = dir.write(prefix + "-ca.crt", ca_bundle_pem, 0644);
  if (!crl_pem.empty()) f.crl = dir.write(prefix + ".crl", crl_pem, 0644);
  return f;
}

std::shared_ptr<const certwatch::CertBundle> load_bundle(const certwatch::CertFiles& files, std::string* error) {
  auto r = certwatch::load_cert_bundle(files);
  if (!r) {
    if (error != nullptr) *error = base::to_string(r.error());
    return nullptr;
  }
  return *r;
}

std::shared_ptr<const certwatch::CertBundle> make_bundle(const TempDir& dir, const std::string& prefix,
                                                         const Issued& node, const std::string& ca_bundle_pem,
                                                         const std::string& crl_pem) {
  std::string err;
  auto b = load_bundle(write_node_files(dir, prefix, node, ca_bundle_pem, crl_pem), &err);
  if (!b) throw std::runtime_error("test bundle failed to load: " + err);
  return b;
}

bool openssl_available() {
  static const bool ok = run("openssl version") == 0;
  return ok;
}

std::optional<std::string> make_crl(const TempDir& dir, const TestCa& ca, const std::vector<Issued>& revoked,
                                    bool expired) {
  if (!openssl_available()) return std::nullopt;
  static std::atomic<int> counter{0};
  const std::string sub = dir.path() + "/crl" + std::to_string(counter.fetch_add(1));
  if (::mkdir(sub.c_str(), 0700) != 0) return std::nullopt;
  auto put = [&](const std::string& name, const std::string& content) {
    std::ofstream f(sub + "/" + name, std::ios::binary);
    f << content;
    return sub + "/" + name;
  };
  const std::string ca_crt = put("ca.crt", ca.cert_pem());
  const std::string ca_key = put("ca.key", ca.key_pem());
  put("index.txt", "");
  put("crlnumber", "01\n");
  const std::string cfg = put("openssl.cnf",
                              "[ ca ]\ndefault_ca = CA_default\n"
                              "[ CA_default ]\n"
                              "dir = " + sub + "\n"
                              "database = $dir/index.txt\n"
                              "crlnumber = $dir/crlnumber\n"
                              "new_certs_dir = $dir\n"
                              "certificate = $dir/ca.crt\n"
                              "private_key = $dir/ca.key\n"
                              "default_md = sha256\n"
                              "default_crl_days = 30\n"
                              "policy = policy_any\n"
                              "[ policy_any ]\ncommonName = supplied\n");
  const std::string base = "openssl ca -batch -config '" + cfg + "' -keyfile '" + ca_key + "' -cert '" + ca_crt + "'";
  int i = 0;
  for (const Issued& r : revoked) {
    const std::string p = put("revoked" + std::to_string(i++) + ".pem", r.cert_pem);
    if (run(base + " -revoke '" + p + "'") != 0) return std::nullopt;
  }
  const std::string out = sub + "/crl.pem";
  std::string cmd = base + " -gencrl -out '" + out + "'";
  if (expired) cmd += " -crl_lastupdate 20200101000000Z -crl_nextupdate 20200201000000Z";
  if (run(cmd) != 0) return std::nullopt;
  return slurp(out);
}

std::optional<Issued> make_ed25519_self_signed(const TempDir& dir) {
  if (!openssl_available()) return std::nullopt;
  const std::string key = dir.path() + "/ed25519.key";
  const std::string crt = dir.path() + "/ed25519.crt";
  if (run("openssl genpkey -algorithm ed25519 -out '" + key + "'") != 0) return std::nullopt;
  if (run("openssl req -x509 -new -key '" + key + "' -subj /CN=ed25519-node -days 1 -out '" + crt + "'") != 0) {
    return std::nullopt;
  }
  Issued out;
  auto k = slurp(key);
  auto c = slurp(crt);
  if (!k || !c) return std::nullopt;
  out.key_pem = *k;
  out.cert_pem = *c;
  return out;
}

}  // namespace fedproxy::testing

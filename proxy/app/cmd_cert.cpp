// `fedproxy cert inspect FILE [--json]`: what a certificate file holds
// (SPEC §10), so an operator can see the URI SAN, grant id, expiry and the
// fingerprint to pin without reaching for openssl.
#include <cstdio>
#include <ctime>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "certwatch/cert_bundle.hpp"
#include "certwatch/digest.hpp"
#include "config/json.hpp"
#include "proxy/app/args.hpp"
#include "proxy/app/commands.hpp"
#include "proxy/tls/peer_identity.hpp"

namespace fedproxy::app {

namespace {

const char* kCertUsage =
    "Usage: fedproxy cert inspect FILE [--json]\n"
    "Shows every certificate in FILE (PEM, several allowed, the first is the leaf; or one DER\n"
    "certificate): subject, issuer, serial, URI / DNS / IP SANs, the grant id of extension\n"
    "1.3.6.1.4.1.99999.1, not_before / not_after (ISO 8601 UTC and unix seconds), days left\n"
    "(rounded down, negative once expired), key type and size, and the SHA-256 of the DER\n"
    "certificate and of its SubjectPublicKeyInfo. Hashes are 64 lowercase hex digits without\n"
    "colons: the form of cert_fingerprint pins, manifests and /status (`openssl x509\n"
    "-fingerprint -sha256` prints the same bytes in uppercase with colons).\n"
    "--json prints one JSON object {\"file\", \"count\", \"certificates\": [...]}.\n"
    "Exit 0; 2 on a usage error (unknown option, missing or extra argument) and when\n"
    "FILE cannot be read or holds no certificate.\n";

struct Inspected {
  tls::PeerIdentity id;
  certwatch::CertDetails details;
  std::string serial;  // uppercase hex, as `openssl x509 -serial` prints it
  int64_t days_left = 0;
  bool expired = false;
  bool not_yet_valid = false;
};

// DER INTEGER content to openssl's form: no leading zero octets, uppercase.
std::string serial_hex(const std::string& raw) {
  size_t i = 0;
  while (i + 1 < raw.size() && raw[i] == '\0') ++i;
  std::string hex = certwatch::hex_lower(reinterpret_cast<const unsigned char*>(raw.data()) + i, raw.size() - i);
  for (char& c : hex) c = static_cast<char>(c >= 'a' && c <= 'f' ? c - 'a' + 'A' : c);
  return hex;
}

Inspected inspect(const mbedtls_x509_crt& crt, int64_t now) {
  Inspected r;
  r.id = tls::identity_from_cert(crt);
  r.details = certwatch::cert_details(crt);
  r.serial = serial_hex(r.id.serial_raw);
  r.days_left = certwatch::days_left(r.id.not_after, now);
  r.expired = r.id.not_after < now;
  r.not_yet_valid = r.details.not_before > now;
  return r;
}

std::string q(std::string_view s) { return config::json::quote(s); }

std::string strings(const std::vector<std::string>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + q(v[i]);
  return out + "]";
}

// One certificate as a JSON object, fields in reading order, indented to
// sit inside the "certificates" array.
std::string to_json(const Inspected& c) {
  const std::vector<std::pair<const char*, std::string>> fields = {
      {"subject", q(c.id.subject)},
      {"issuer", q(c.details.issuer)},
      {"serial", q(c.serial)},
      {"uri_sans", strings(c.id.uri_sans)},
      {"dns_sans", strings(c.details.dns_sans)},
      {"ip_sans", strings(c.details.ip_sans)},
      {"grant_id", c.id.grant_id ? q(*c.id.grant_id) : "null"},
      // Unix seconds under the names /status uses; the ISO forms beside them.
      {"not_before", std::to_string(c.details.not_before)},
      {"not_before_iso", q(certwatch::unix_to_iso8601(c.details.not_before))},
      {"not_after", std::to_string(c.id.not_after)},
      {"not_after_iso", q(certwatch::unix_to_iso8601(c.id.not_after))},
      {"days_left", std::to_string(c.days_left)},
      {"expired", c.expired ? "true" : "false"},
      {"not_yet_valid", c.not_yet_valid ? "true" : "false"},
      {"key_type", q(c.details.key_type)},
      {"key_curve", c.details.key_curve.empty() ? "null" : q(c.details.key_curve)},
      {"key_bits", std::to_string(c.details.key_bits)},
      {"fingerprint_sha256", q(c.id.der_sha256)},
      {"spki_sha256", q(c.id.spki_sha256)},
  };
  std::string out = "    {\n";
  for (size_t i = 0; i < fields.size(); ++i) {
    out += std::string("      \"") + fields[i].first + "\": " + fields[i].second + (i + 1 < fields.size() ? ",\n" : "\n");
  }
  return out + "    }";
}

// Text from a certificate may hold control bytes: never send them to a terminal.
std::string printable(const std::string& s) {
  std::string out = s;
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return out;
}

std::string list(const std::vector<std::string>& v) {
  if (v.empty()) return "(none)";
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + printable(s);
  return out;
}

void print_text(const Inspected& c, int index, int count) {
  std::printf("certificate %d of %d%s\n", index + 1, count, index == 0 ? " (leaf)" : "");
  auto row = [](const char* name, const std::string& value) { std::printf("  %-14s %s\n", name, value.c_str()); };
  row("subject:", printable(c.id.subject));
  row("issuer:", printable(c.details.issuer));
  row("serial:", c.serial);
  row("URI SANs:", list(c.id.uri_sans));
  row("DNS SANs:", list(c.details.dns_sans));
  row("IP SANs:", list(c.details.ip_sans));
  row("grant id:", c.id.grant_id ? printable(*c.id.grant_id) : "(none: no extension 1.3.6.1.4.1.99999.1)");
  row("not before:", certwatch::unix_to_iso8601(c.details.not_before) + " (" + std::to_string(c.details.not_before) + ")");
  row("not after:", certwatch::unix_to_iso8601(c.id.not_after) + " (" + std::to_string(c.id.not_after) + ")");
  row("days left:", std::to_string(c.days_left));
  row("expired:", c.expired ? "yes" : c.not_yet_valid ? "no (not valid yet)" : "no");
  std::string key = c.details.key_type;
  if (!c.details.key_curve.empty()) key += " " + c.details.key_curve;
  row("key:", key + " (" + std::to_string(c.details.key_bits) + " bits)");
  row("SHA-256:", c.id.der_sha256 + " (certificate DER)");
  row("SPKI SHA-256:", c.id.spki_sha256);
}

}  // namespace

int cmd_cert(const std::vector<std::string>& args) {
  static const CommandSpec spec{"cert", kCertUsage, {{"--json"}}, 2, 2};
  ParsedArgs parsed;
  if (auto done = parse_args(spec, args, &parsed)) return *done;
  if (parsed.positional()[0] != "inspect") {
    return usage_error(spec, "unknown subcommand '" + parsed.positional()[0] + "'");
  }
  const std::string& path = parsed.positional()[1];
  const bool json = parsed.has("--json");

  auto loaded = certwatch::load_cert_file(path);
  if (!loaded) {
    std::fprintf(stderr, "fedproxy cert inspect: %s: %s\n", path.c_str(), loaded.message().c_str());
    return kExitFatal;
  }
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  std::vector<Inspected> certs;
  for (const mbedtls_x509_crt* c = &(*loaded)->chain; c != nullptr && c->raw.len > 0; c = c->next) {
    certs.push_back(inspect(*c, now));
  }
  const int count = static_cast<int>(certs.size());
  if (json) {
    std::string out = "{\n  \"file\": " + q(path) + ",\n  \"count\": " + std::to_string(count) +
                      ",\n  \"certificates\": [\n";
    for (int i = 0; i < count; ++i) out += to_json(certs[static_cast<size_t>(i)]) + (i + 1 < count ? ",\n" : "\n");
    out += "  ]\n}\n";
    std::fputs(out.c_str(), stdout);
    return 0;
  }
  std::printf("%s\n", printable(path).c_str());
  for (int i = 0; i < count; ++i) {
    if (i) std::printf("\n");
    print_text(certs[static_cast<size_t>(i)], i, count);
  }
  return 0;
}

}  // namespace fedproxy::app

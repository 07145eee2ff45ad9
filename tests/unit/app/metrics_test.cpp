#include <doctest/doctest.h>

#include <cstdint>
#include <string>

#include "proxy/app/metrics.hpp"

using fedproxy::app::Metrics;
using fedproxy::app::RequestSample;

namespace {

// The value of the exposition line that starts with `series ` ("" if none).
std::string value_of(const std::string& text, const std::string& series) {
  size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return "";
  at += series.size() + 2;
  return text.substr(at, text.find('\n', at) - at);
}

RequestSample sample(uint64_t duration_ns) {
  RequestSample s;
  s.peer = "p";
  s.grant = "g";
  s.decision = "allow";
  s.status = 200;
  s.duration_ns = duration_ns;
  return s;
}

const char* kBucket = "fedproxy_request_duration_seconds_bucket";

}  // namespace

TEST_CASE("latency: a sub-millisecond request lands in the sub-millisecond buckets") {
  Metrics m;
  m.count_request(sample(180'000));  // 180 µs: the ms clock made this 0
  std::string t = m.render(0, 0, false);
  CHECK(value_of(t, std::string(kBucket) + "{le=\"0.0001\"}") == "0");
  CHECK(value_of(t, std::string(kBucket) + "{le=\"0.00025\"}") == "1");
  CHECK(value_of(t, std::string(kBucket) + "{le=\"0.0005\"}") == "1");
  CHECK(value_of(t, std::string(kBucket) + "{le=\"+Inf\"}") == "1");
  CHECK(value_of(t, "fedproxy_request_duration_seconds_sum") == "0.00018");
  CHECK(value_of(t, "fedproxy_request_duration_seconds_count") == "1");
}

TEST_CASE("latency: le is inclusive, and above every bound counts only in +Inf") {
  Metrics m;
  m.count_request(sample(1'000'000));       // exactly 1 ms
  m.count_request(sample(120'000'000'000));  // 2 minutes
  std::string t = m.render(0, 0, false);
  CHECK(value_of(t, std::string(kBucket) + "{le=\"0.0005\"}") == "0");
  CHECK(value_of(t, std::string(kBucket) + "{le=\"0.001\"}") == "1");
  CHECK(value_of(t, std::string(kBucket) + "{le=\"60\"}") == "1");
  CHECK(value_of(t, std::string(kBucket) + "{le=\"+Inf\"}") == "2");
  CHECK(value_of(t, "fedproxy_request_duration_seconds_sum") == "120.001");
}

TEST_CASE("latency: the sum stays exact where %.6g rounded it") {
  Metrics m;
  // 1,000,000 requests of 1.234567 ms: 1234.567 s; %.6g printed 1234.57.
  RequestSample s = sample(1'234'567);
  for (int i = 0; i < 1'000'000; ++i) m.count_request(s);
  m.count_request(sample(1));  // one more nanosecond must show
  std::string t = m.render(0, 0, false);
  CHECK(value_of(t, "fedproxy_request_duration_seconds_sum") == "1234.567000001");
  CHECK(value_of(t, "fedproxy_request_duration_seconds_count") == "1000001");
}

TEST_CASE("merge: counters add up; the latest peer certificate seen wins") {
  Metrics a, b, total;
  RequestSample s = sample(2'000'000);
  s.peer_cert = true;
  s.peer_cert_sha256 = "old";
  s.peer_cert_subject = "CN=old";
  s.peer_cert_not_after = 100;
  s.seen_ns = 10;
  a.count_request(s);
  s.peer_cert_sha256 = "new";
  s.peer_cert_subject = "CN=new";
  s.peer_cert_not_after = 200;
  s.seen_ns = 20;
  b.count_request(s);
  b.merge_into(total);
  a.merge_into(total);
  std::string t = total.render(3, 4, false);
  CHECK(value_of(t, "fedproxy_request_duration_seconds_count") == "2");
  CHECK(value_of(t, "fedproxy_request_duration_seconds_sum") == "0.004");
  CHECK(value_of(t, "fedproxy_requests_total{direction=\"ingress\",peer=\"p\",grant=\"g\",decision=\"allow\",status=\"200\"}") ==
        "2");
  CHECK(value_of(t, "fedproxy_active_connections") == "3");
  auto certs = total.peer_certs();
  REQUIRE(certs.count("p") == 1);
  CHECK(certs["p"].sha256 == "new");
  CHECK(certs["p"].not_after == 200);
}

TEST_CASE("no floating-point notation anywhere in the data-path exposition") {
  Metrics m;
  m.count_request(sample(987'654'321'123));
  std::string t = m.render(0, 0, false);
  CHECK(t.find("e+") == std::string::npos);
  CHECK(t.find("e-") == std::string::npos);
  CHECK(value_of(t, "fedproxy_request_duration_seconds_sum") == "987.654321123");
}

TEST_CASE("handshake failures: every category is exported from the start") {
  Metrics m;
  m.count_handshake_failure("certificate_expired: certificate expired");
  m.count_handshake_failure("handshake timed out");  // what the ingress session says
  m.count_handshake_failure("connection reset by peer");
  m.count_handshake_failure("something new");
  std::string t = m.render(0, 0, false);
  CHECK(value_of(t, "fedproxy_handshake_failures_total{reason=\"certificate_expired\"}") == "1");
  CHECK(value_of(t, "fedproxy_handshake_failures_total{reason=\"timeout\"}") == "1");
  CHECK(value_of(t, "fedproxy_handshake_failures_total{reason=\"peer_closed\"}") == "1");
  CHECK(value_of(t, "fedproxy_handshake_failures_total{reason=\"other\"}") == "1");
  for (const char* r : {"no_certificate", "untrusted_issuer", "certificate_not_yet_valid", "certificate_revoked",
                        "crl_stale", "bad_certificate", "bad_signature", "protocol_version", "handshake_failure",
                        "protocol_error", "peer_alert", "bad_record_mac", "not_tls"}) {
    CHECK(value_of(t, std::string("fedproxy_handshake_failures_total{reason=\"") + r + "\"}") == "0");
  }
  // A label is never made from the text: an unknown prefix is "other".
  CHECK(Metrics::handshake_reason_category("evil\"label: x") == "other");
}

// Join tokens: format/parse round trip, malformed tokens refused, the
// secret digest and the constant-time comparison.
#include "config/join_token.hpp"

#include <doctest/doctest.h>

#include <string>

namespace cfg = fedproxy::config;

namespace {
const std::string kId = "0123456789abcdef";
const std::string kSecret(64, 'a');
const std::string kPin(64, '7');
}  // namespace

TEST_CASE("a join token survives format and parse") {
  const cfg::JoinToken t{kId, kSecret, kPin};
  const std::string text = cfg::format_join_token(t);
  CHECK(text == "fpj1." + kId + "." + kSecret + "." + kPin);
  auto back = cfg::parse_join_token(text);
  REQUIRE(back);
  CHECK(back->id == kId);
  CHECK(back->secret == kSecret);
  CHECK(back->ca_pin == kPin);
}

TEST_CASE("new join tokens are well formed and differ") {
  auto a = cfg::new_join_token(kPin);
  auto b = cfg::new_join_token(kPin);
  REQUIRE(a);
  REQUIRE(b);
  CHECK(cfg::parse_join_token(cfg::format_join_token(*a)));
  CHECK(a->id != b->id);
  CHECK(a->secret != b->secret);
  CHECK(a->ca_pin == kPin);
}

TEST_CASE("malformed join tokens are refused") {
  const std::string good = "fpj1." + kId + "." + kSecret + "." + kPin;
  const struct {
    const char* why;
    std::string text;
  } cases[] = {
      {"empty", ""},
      {"prefix only", "fpj1"},
      {"wrong prefix", "fpj2." + kId + "." + kSecret + "." + kPin},
      {"upper-case prefix", "FPJ1." + kId + "." + kSecret + "." + kPin},
      {"three parts", "fpj1." + kId + "." + kSecret},
      {"five parts", good + ".00"},
      {"trailing dot", good + "."},
      {"leading dot", "." + good},
      {"short id", "fpj1." + kId.substr(1) + "." + kSecret + "." + kPin},
      {"long id", "fpj1." + kId + "0." + kSecret + "." + kPin},
      {"upper-case hex in id", "fpj1.0123456789ABCDEF." + kSecret + "." + kPin},
      {"short secret", "fpj1." + kId + "." + kSecret.substr(2) + "." + kPin},
      {"non-hex secret", "fpj1." + kId + "." + std::string(64, 'g') + "." + kPin},
      {"short pin", "fpj1." + kId + "." + kSecret + "." + kPin.substr(1)},
      {"pin with a colon", "fpj1." + kId + "." + kSecret + "." + std::string(63, '7') + ":"},
      {"empty parts", "fpj1..."},
      {"space inside", "fpj1. " + kId.substr(1) + "." + kSecret + "." + kPin},
      {"trailing newline", good + "\n"},
  };
  REQUIRE(cfg::parse_join_token(good));
  for (const auto& c : cases) {
    CAPTURE(c.why);
    CHECK_FALSE(cfg::parse_join_token(c.text));
  }
}

TEST_CASE("the secret digest is SHA-256 hex and comparisons need equal digests") {
  // sha256("abc")
  CHECK(cfg::secret_digest("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(cfg::digests_equal(cfg::secret_digest(kSecret), cfg::secret_digest(kSecret)));
  CHECK_FALSE(cfg::digests_equal(cfg::secret_digest(kSecret), cfg::secret_digest(kPin)));
  CHECK_FALSE(cfg::digests_equal("ab", "abc"));
}

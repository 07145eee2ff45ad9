// Join tokens (SPEC §13): "fpj1.<id>.<secret>.<ca pin>". The id names the
// invite, the secret proves the holder got the token from the inviter (only
// its SHA-256 is stored), and the pin is the SHA-256 of the inviter's CA
// certificate DER, which the joiner checks before it sends the secret
// (as `kubeadm join --discovery-token-ca-cert-hash` does).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace fedproxy::config {

struct JoinToken {
  std::string id;      // 16 lowercase hex
  std::string secret;  // 64 lowercase hex (32 random bytes)
  std::string ca_pin;  // 64 lowercase hex
};

constexpr std::string_view kJoinTokenPrefix = "fpj1";

std::string format_join_token(const JoinToken& token);
// nullopt for anything but exactly that shape.
std::optional<JoinToken> parse_join_token(std::string_view text);

// A new id and secret from the OS's random source (getrandom); nullopt if
// it fails.
std::optional<JoinToken> new_join_token(std::string ca_pin);

// SHA-256 of the secret as 64 lowercase hex: what the invite stores.
std::string secret_digest(std::string_view secret);
// Equal-length hex strings compared in time independent of where they differ.
bool digests_equal(std::string_view a, std::string_view b);

}  // namespace fedproxy::config

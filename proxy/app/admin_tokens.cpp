#include "proxy/app/admin_tokens.hpp"

#include <string_view>
#include <utility>

#include "certwatch/read_file.hpp"

namespace fedproxy::app {

namespace {

// RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
bool is_b64token(std::string_view t) {
  size_t i = 0;
  auto token_char = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
  };
  while (i < t.size() && token_char(t[i])) ++i;
  if (i == 0) return false;
  while (i < t.size() && t[i] == '=') ++i;
  return i == t.size();
}

// The token in a file's text, or "" with *why set.
std::string token_of(std::string text, std::string* why) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' ||
                           text.back() == '\t')) {
    text.pop_back();
  }
  if (text.empty()) {
    *why = "holds no token (only whitespace)";
  } else if (text.size() < kMinAdminTokenChars) {
    *why = "the token has " + std::to_string(text.size()) + " characters; use at least " +
           std::to_string(kMinAdminTokenChars) + " (e.g. openssl rand -hex 32)";
  } else if (text.size() > kMaxAdminTokenChars) {
    *why = "the token is longer than " + std::to_string(kMaxAdminTokenChars) + " characters";
  } else if (!is_b64token(text)) {
    *why = "the token has characters a Bearer token cannot carry (use A-Z a-z 0-9 - . _ ~ + /, "
           "and = only at the end; one line)";
  } else {
    return text;
  }
  return "";
}

}  // namespace

namespace {

base::Result<core::AdminToken> load_admin_token(const config::AdminTokenFile& f, bool allow_world_readable) {
  auto problem = [&f](base::Errc code, const std::string& why) {
    return base::make_error(code, f.where + ": " + why, f.path);
  };
  std::string text, error;
  mode_t mode = 0;
  if (!certwatch::read_file(f.path, text, &mode, error)) return problem(base::Errc::io, error);
  if (std::string open = certwatch::world_readable_error(mode, "admin token"); !open.empty() && !allow_world_readable) {
    return problem(base::Errc::refused, open);
  }
  std::string token = token_of(std::move(text), &error);
  if (token.empty()) return problem(base::Errc::invalid, error);
  return core::AdminToken{f.name, core::admin_token_digest(token)};
}

}  // namespace

std::vector<base::Result<core::AdminToken>> load_admin_tokens(const std::vector<config::AdminTokenFile>& files,
                                                              bool allow_world_readable) {
  std::vector<base::Result<core::AdminToken>> out;
  out.reserve(files.size());
  for (const auto& f : files) {
    base::Result<core::AdminToken> r = load_admin_token(f, allow_world_readable);
    for (size_t i = 0; i < out.size() && r.ok(); ++i) {
      if (out[i].ok() && out[i]->sha256_hex == r->sha256_hex) {
        r = base::make_error(base::Errc::invalid,
                             f.where + ": the same token as " + files[i].where + " (" + files[i].path +
                                 "); each token must speak for one actor",
                             f.path);
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace fedproxy::app

#include "proxy/app/admin_tokens.hpp"

#include <string_view>

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

AdminTokensResult load_admin_tokens(const std::vector<policy::AdminTokenFile>& files,
                                    bool allow_world_readable) {
  AdminTokensResult r;
  std::vector<const policy::AdminTokenFile*> owner;  // of each r.tokens entry
  for (const auto& f : files) {
    auto problem = [&](const std::string& why) { r.problems.push_back({f.path, f.where + ": " + why}); };
    std::string text, error;
    mode_t mode = 0;
    if (!certwatch::read_file(f.path, text, &mode, error)) {
      problem(error);
      continue;
    }
    if (std::string open = certwatch::world_readable_error(mode, "admin token"); !open.empty() && !allow_world_readable) {
      problem(open);
      continue;
    }
    std::string token = token_of(std::move(text), &error);
    if (token.empty()) {
      problem(error);
      continue;
    }
    core::AdminToken t{f.name, core::admin_token_digest(token)};
    bool duplicate = false;
    for (size_t i = 0; i < r.tokens.size() && !duplicate; ++i) {
      if (r.tokens[i].sha256_hex == t.sha256_hex) {
        problem("the same token as " + owner[i]->where + " (" + owner[i]->path +
                "); each token must speak for one actor");
        duplicate = true;
      }
    }
    if (duplicate) continue;
    r.tokens.push_back(std::move(t));
    owner.push_back(&f);
  }
  return r;
}

}  // namespace fedproxy::app

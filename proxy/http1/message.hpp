// HTTP/1.1 message heads as the codec hands them over. Plain data.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fedproxy::http1 {

struct Header {
  std::string name;   // as received (case kept)
  std::string value;  // leading/trailing OWS removed
};

using Headers = std::vector<Header>;

bool iequals(std::string_view a, std::string_view b);
// First header with this name (case-insensitive), or nullptr.
const Header* find_header(const Headers& headers, std::string_view name);

enum class BodyKind { none, content_length, chunked, until_close };

struct RequestHead {
  std::string method;
  std::string target;     // request-target exactly as received
  int version_minor = 1;  // HTTP/1.<minor>
  Headers headers;
  bool keep_alive = true;            // llhttp_should_keep_alive()
  BodyKind body = BodyKind::none;    // none, content_length or chunked
  uint64_t content_length = 0;       // when body == content_length
  bool expect_continue = false;      // "Expect: 100-continue"
};

struct ResponseHead {
  int status = 0;
  std::string reason;
  int version_minor = 1;
  Headers headers;
  bool keep_alive = true;
  BodyKind body = BodyKind::none;  // until_close when neither CL nor chunked
  uint64_t content_length = 0;
};

}  // namespace fedproxy::http1

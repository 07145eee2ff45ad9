// Internal helpers shared by the request and response parsers. Not API.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include <llhttp.h>

#include "proxy/http1/message.hpp"

namespace fedproxy::http1::detail {

inline bool is_ows(char c) { return c == ' ' || c == '\t'; }

inline std::string_view trim_ows(std::string_view v) {
  size_t b = 0, e = v.size();
  while (b < e && is_ows(v[b])) ++b;
  while (e > b && is_ows(v[e - 1])) --e;
  return v.substr(b, e - b);
}

// Which framing-relevant header a name is (the parsers look at few names, so
// dispatch on length first to keep the common case cheap).
enum class Special { other, content_length, transfer_encoding, host, expect };

inline Special classify(std::string_view name) {
  switch (name.size()) {
    case 4:
      return iequals(name, "host") ? Special::host : Special::other;
    case 6:
      return iequals(name, "expect") ? Special::expect : Special::other;
    case 14:
      return iequals(name, "content-length") ? Special::content_length : Special::other;
    case 17:
      return iequals(name, "transfer-encoding") ? Special::transfer_encoding : Special::other;
    default:
      return Special::other;
  }
}

// The parser object behind an llhttp callback (llhttp_t::data).
template <typename Parser>
Parser& parser_of(llhttp_t* p) {
  return *static_cast<Parser*>(p->data);
}

// Points the callbacks both parsers handle (all but the start line) at the
// Parser's cb_* members; each parser adds its own start-line callbacks.
template <typename Parser>
void bind_common_callbacks(llhttp_settings_t& settings) {
  settings.on_message_begin = [](llhttp_t* p) { return parser_of<Parser>(p).cb_message_begin(); };
  settings.on_header_field = [](llhttp_t* p, const char* at, size_t len) {
    return parser_of<Parser>(p).cb_header_field(at, len);
  };
  settings.on_header_value = [](llhttp_t* p, const char* at, size_t len) {
    return parser_of<Parser>(p).cb_header_value(at, len);
  };
  settings.on_header_value_complete = [](llhttp_t* p) {
    return parser_of<Parser>(p).cb_header_value_complete();
  };
  settings.on_headers_complete = [](llhttp_t* p) {
    return parser_of<Parser>(p).cb_headers_complete();
  };
  settings.on_body = [](llhttp_t* p, const char* at, size_t len) {
    return parser_of<Parser>(p).cb_body(at, len);
  };
  settings.on_message_complete = [](llhttp_t* p) {
    return parser_of<Parser>(p).cb_message_complete();
  };
  // Chunk extensions: only counted (they are never passed on). A name or a
  // value that starts adds one byte for its ";" or "=".
  settings.on_chunk_extension_name = [](llhttp_t* p, const char*, size_t len) {
    return parser_of<Parser>(p).cb_chunk_extension(len);
  };
  settings.on_chunk_extension_value = [](llhttp_t* p, const char*, size_t len) {
    return parser_of<Parser>(p).cb_chunk_extension(len);
  };
  settings.on_chunk_extension_name_complete = [](llhttp_t* p) {
    return parser_of<Parser>(p).cb_chunk_extension(1);
  };
  settings.on_chunk_extension_value_complete = [](llhttp_t* p) {
    return parser_of<Parser>(p).cb_chunk_extension(1);
  };
  settings.on_chunk_header = [](llhttp_t* p) { return parser_of<Parser>(p).cb_chunk_header(); };
}

// Chunk extensions are a desync and bandwidth-amplification vector (a peer
// can send megabytes that no application reads): SPEC §1 bounds them per
// chunk and per message, like Node.js does.
struct ChunkExtensionLimits {
  size_t per_chunk = 1024;
  size_t per_message = 16384;
};

class ChunkExtensionBudget {
 public:
  void begin_message() { chunk_ = message_ = 0; }
  void end_chunk_size_line() { chunk_ = 0; }
  // nullptr while within the limits, else why the message is refused.
  const char* add(size_t len, const ChunkExtensionLimits& limits) {
    chunk_ += len;
    message_ += len;
    if (chunk_ > limits.per_chunk) return "chunk extensions too long on one chunk";
    if (message_ > limits.per_message) return "chunk extensions too long in one message";
    return nullptr;
  }

 private:
  size_t chunk_ = 0;
  size_t message_ = 0;
};

// How many of the len bytes at data llhttp_execute() consumed before it
// stopped (error or pause).
inline size_t consumed_before_stop(const llhttp_t& parser, const char* data, size_t len) {
  const char* pos = llhttp_get_error_pos(&parser);
  return (pos != nullptr && pos >= data && pos <= data + len) ? static_cast<size_t>(pos - data) : 0;
}

// Why llhttp stopped: the reason it (or a callback) set, else the errno name.
inline const char* stop_reason(const llhttp_t& parser, llhttp_errno_t err) {
  const char* reason = llhttp_get_error_reason(&parser);
  return (reason != nullptr && *reason != '\0') ? reason : llhttp_errno_name(err);
}

// One header section (a head or chunked trailers) as llhttp hands it over in
// pieces: the current field line's name and value, the count and byte
// budget, and the Content-Length / Transfer-Encoding rules both parsers
// apply. Pieces arriving with keep == false (trailers) are counted against
// the limits and dropped. The buffers are reused from field to field.
class HeaderAccumulator {
 public:
  enum class Status { ok, too_many_fields, too_many_bytes };

  // A new message: empty buffers, a full budget, no framing fields seen.
  void begin_message() {
    field_.clear();
    value_.clear();
    begin_trailers();
    cl_count_ = 0;
    te_count_ = 0;
    te_exact_chunked_ = false;
  }
  // Trailers of a chunked body get a fresh budget under the same limits.
  void begin_trailers() {
    in_value_ = false;
    bytes_ = 0;
    count_ = 0;
  }

  // Bytes outside the fields that share their budget (the status text).
  bool add_bytes(size_t len, size_t max_bytes) {
    bytes_ += len;
    return bytes_ <= max_bytes;
  }

  Status on_field(const char* at, size_t len, bool keep, size_t max_count, size_t max_bytes) {
    if (!in_value_) {  // a new field line starts
      in_value_ = true;
      if (++count_ > max_count) return Status::too_many_fields;
    }
    if (!add_bytes(len, max_bytes)) return Status::too_many_bytes;
    if (keep) field_.append(at, len);
    return Status::ok;
  }

  Status on_value(const char* at, size_t len, bool keep, size_t max_bytes) {
    if (!add_bytes(len, max_bytes)) return Status::too_many_bytes;
    if (keep) value_.append(at, len);
    return Status::ok;
  }

  void on_value_complete() { in_value_ = false; }

  std::string_view field() const { return field_; }
  std::string_view value() const { return trim_ows(value_); }  // without surrounding OWS

  // Counts the framing fields of the current line: nullptr, or why the
  // message is refused.
  const char* check_framing(Special kind) {
    switch (kind) {
      case Special::content_length:
        // llhttp rejects this too ("Duplicate Content-Length"); keep it explicit.
        if (++cl_count_ > 1) return "duplicate Content-Length";
        break;
      case Special::transfer_encoding:
        // Exactly "chunked": llhttp already skipped the leading OWS, anything
        // else (trailing OWS, a list, another coding) is refused: it could not
        // be passed on once the body is de-chunked and re-framed.
        if (++te_count_ > 1) return "more than one Transfer-Encoding";
        te_exact_chunked_ = iequals(value_, "chunked");
        if (!te_exact_chunked_) return "Transfer-Encoding other than chunked";
        break;
      default:
        break;
    }
    return nullptr;
  }

  // Appends the current field line to headers and starts the next one.
  void emit(Headers& headers) {
    headers.push_back(Header{std::move(field_), std::string(value())});
    field_.clear();
    value_.clear();
  }

  unsigned cl_count() const { return cl_count_; }
  unsigned te_count() const { return te_count_; }
  bool te_exact_chunked() const { return te_exact_chunked_; }

 private:
  std::string field_;
  std::string value_;
  bool in_value_ = false;
  size_t bytes_ = 0;
  size_t count_ = 0;
  unsigned cl_count_ = 0;
  unsigned te_count_ = 0;
  bool te_exact_chunked_ = false;
};

}  // namespace fedproxy::http1::detail

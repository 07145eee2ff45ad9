#include "proxy/http1/response_parser.hpp"

#include <cstdint>

#include "proxy/http1/codec_detail.hpp"

namespace fedproxy::http1 {

namespace {

ResponseParser& self(llhttp_t* p) { return *static_cast<ResponseParser*>(p->data); }

constexpr uint64_t kMaxContentLength = static_cast<uint64_t>(INT64_MAX);
// Header fields per response: bounds the Headers vector independently of
// the byte limit (a 64 KiB head of "a:\r\n" lines would be 16k entries).
constexpr size_t kMaxResponseHeaderCount = 1000;

}  // namespace

ResponseParser::ResponseParser(ResponseSink& sink, size_t max_header_bytes)
    : sink_(sink), max_header_bytes_(max_header_bytes) {
  llhttp_settings_init(&settings_);
  settings_.on_message_begin = [](llhttp_t* p) { return self(p).cb_message_begin(); };
  settings_.on_status = [](llhttp_t* p, const char* at, size_t len) {
    return self(p).cb_status(at, len);
  };
  settings_.on_header_field = [](llhttp_t* p, const char* at, size_t len) {
    return self(p).cb_header_field(at, len);
  };
  settings_.on_header_value = [](llhttp_t* p, const char* at, size_t len) {
    return self(p).cb_header_value(at, len);
  };
  settings_.on_header_value_complete = [](llhttp_t* p) {
    return self(p).cb_header_value_complete();
  };
  settings_.on_headers_complete = [](llhttp_t* p) { return self(p).cb_headers_complete(); };
  settings_.on_body = [](llhttp_t* p, const char* at, size_t len) {
    return self(p).cb_body(at, len);
  };
  settings_.on_message_complete = [](llhttp_t* p) { return self(p).cb_message_complete(); };
  llhttp_init(&parser_, HTTP_RESPONSE, &settings_);  // strict: no lenient flags
  parser_.data = this;
}

void ResponseParser::expect_response_to(std::string_view method) {
  head_request_ = iequals(method, "HEAD");
}

int ResponseParser::fail(const char* detail) {
  if (!failed_) {
    failed_ = true;
    error_detail_ = detail;
  }
  llhttp_set_error_reason(&parser_, detail);
  return HPE_USER;
}

size_t ResponseParser::feed(const char* data, size_t len) {
  if (failed_ || paused_ || len == 0) return 0;
  const bool head_pending = !head_done_;
  const llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  size_t consumed = len;
  if (err != HPE_OK) {
    const char* pos = llhttp_get_error_pos(&parser_);
    consumed = (pos != nullptr && pos >= data && pos <= data + len) ? static_cast<size_t>(pos - data) : 0;
    if (!(err == HPE_PAUSED && paused_)) {
      paused_ = false;
      if (!failed_) {
        failed_ = true;
        const char* reason = llhttp_get_error_reason(&parser_);
        error_detail_ = (reason != nullptr && *reason != '\0') ? reason : llhttp_errno_name(err);
      }
      return consumed;
    }
  }
  if (head_pending && !head_done_ && !paused_) {
    raw_head_bytes_ += consumed;
    if (raw_head_bytes_ > 2 * max_header_bytes_ + 64 * kMaxResponseHeaderCount) {
      failed_ = true;
      error_detail_ = "response head too large";
    }
  }
  return consumed;
}

void ResponseParser::resume() {
  if (!paused_) return;
  paused_ = false;
  llhttp_resume(&parser_);
}

bool ResponseParser::finish() {
  if (failed_) return false;
  if (!in_message_) return true;
  if (head_done_) {
    // An until-close body ends here: llhttp_finish() runs on_message_complete,
    // which answers HPE_PAUSED.
    const llhttp_errno_t err = llhttp_finish(&parser_);
    if ((err == HPE_OK || err == HPE_PAUSED) && !in_message_) return true;
  }
  failed_ = true;
  error_detail_ = "connection closed in the middle of a response";
  return false;
}

int ResponseParser::cb_message_begin() {
  in_message_ = true;  // stays true across swallowed 1xx responses
  head_done_ = false;
  interim_ = false;
  head_ = ResponseHead{};
  head_.headers.reserve(16);
  field_.clear();
  value_.clear();
  in_value_ = false;
  header_bytes_ = 0;
  header_count_ = 0;
  cl_count_ = 0;
  te_count_ = 0;
  te_exact_chunked_ = false;
  return 0;
}

int ResponseParser::cb_status(const char* at, size_t len) {
  header_bytes_ += len;
  if (header_bytes_ > max_header_bytes_) return fail("response head too large");
  head_.reason.append(at, len);
  return 0;
}

int ResponseParser::cb_header_field(const char* at, size_t len) {
  if (!in_value_) {
    in_value_ = true;
    if (++header_count_ > kMaxResponseHeaderCount) return fail("too many response header fields");
  }
  header_bytes_ += len;
  if (header_bytes_ > max_header_bytes_) return fail("response head too large");
  if (head_done_) return 0;  // trailer: bounded, then dropped
  field_.append(at, len);
  return 0;
}

int ResponseParser::cb_header_value(const char* at, size_t len) {
  header_bytes_ += len;
  if (header_bytes_ > max_header_bytes_) return fail("response head too large");
  if (head_done_) return 0;
  value_.append(at, len);
  return 0;
}

int ResponseParser::cb_header_value_complete() {
  in_value_ = false;
  if (head_done_) return 0;
  return end_header();
}

int ResponseParser::end_header() {
  using detail::Special;
  const std::string_view value = detail::trim_ows(value_);
  switch (detail::classify(field_)) {
    case Special::content_length:
      if (++cl_count_ > 1) return fail("duplicate Content-Length");
      break;
    case Special::transfer_encoding:
      // A coding other than chunked cannot be passed on once the body is
      // de-chunked and re-framed: refuse it rather than corrupt the body.
      if (++te_count_ > 1) return fail("more than one Transfer-Encoding");
      te_exact_chunked_ = iequals(value_, "chunked");
      if (!te_exact_chunked_) return fail("Transfer-Encoding other than chunked");
      break;
    default:
      break;
  }
  head_.headers.push_back(Header{std::move(field_), std::string(value)});
  field_.clear();
  value_.clear();
  return 0;
}

int ResponseParser::cb_headers_complete() {
  if (parser_.http_major != 1 || parser_.http_minor > 1) return fail("unsupported HTTP version");
  const int status = parser_.status_code;
  if (status == 101) return fail("101 Switching Protocols is not supported");
  if (status < 200) {
    // Interim response (100, 102, 103, ...): swallowed. 1xx never has a
    // body, whatever its headers say: skip it.
    interim_ = true;
    return 1;
  }
  if (te_count_ > 0) {
    if (!te_exact_chunked_ || (parser_.flags & F_CHUNKED) == 0)
      return fail("Transfer-Encoding other than chunked");
    if (cl_count_ > 0) return fail("both Content-Length and Transfer-Encoding");
    if (parser_.http_minor == 0) return fail("Transfer-Encoding in an HTTP/1.0 response");
  }
  head_.status = status;
  head_.version_minor = parser_.http_minor;
  if (status == 204 || status == 304) {
    head_.body = BodyKind::none;
  } else if (parser_.flags & F_CHUNKED) {
    head_.body = BodyKind::chunked;
  } else if (parser_.flags & F_CONTENT_LENGTH) {
    if (parser_.content_length > kMaxContentLength) return fail("Content-Length too large");
    if (parser_.content_length > 0) {
      head_.body = BodyKind::content_length;
      head_.content_length = parser_.content_length;
    }
  } else {
    head_.body = BodyKind::until_close;
  }
  // Returning 1 makes llhttp set F_SKIPBODY; set it first so that
  // llhttp_should_keep_alive() already knows no body follows.
  const bool skip_body = head_request_;
  if (skip_body) parser_.flags |= F_SKIPBODY;
  head_.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
  parser_.upgrade = 0;
  head_done_ = true;
  header_bytes_ = 0;
  header_count_ = 0;
  in_value_ = false;
  sink_.on_response_head(std::move(head_));
  return skip_body ? 1 : 0;
}

int ResponseParser::cb_body(const char* at, size_t len) {
  sink_.on_response_body(at, len);
  return 0;
}

int ResponseParser::cb_message_complete() {
  if (interim_) {
    interim_ = false;
    return 0;  // go on with the final response; in_message_ stays true
  }
  in_message_ = false;
  head_done_ = false;
  paused_ = true;
  head_request_ = false;
  raw_head_bytes_ = 0;
  sink_.on_response_complete();
  return HPE_PAUSED;
}

}  // namespace fedproxy::http1

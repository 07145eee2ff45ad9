#include "proxy/http1/response_parser.hpp"

#include <cstdint>

#include "proxy/http1/codec_detail.hpp"

namespace fedproxy::http1 {

namespace {

constexpr uint64_t kMaxContentLength = static_cast<uint64_t>(INT64_MAX);
// Header fields per response: bounds the Headers vector independently of
// the byte limit (a 64 KiB head of "a:\r\n" lines would be 16k entries).
constexpr size_t kMaxResponseHeaderCount = 1000;

}  // namespace

ResponseParser::ResponseParser(ResponseSink& sink, size_t max_header_bytes)
    : sink_(sink), max_header_bytes_(max_header_bytes) {
  llhttp_settings_init(&settings_);
  detail::bind_common_callbacks<ResponseParser>(settings_);
  settings_.on_status = [](llhttp_t* p, const char* at, size_t len) {
    return detail::parser_of<ResponseParser>(p).cb_status(at, len);
  };
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
    consumed = detail::consumed_before_stop(parser_, data, len);
    if (!(err == HPE_PAUSED && paused_)) {
      paused_ = false;
      if (!failed_) {
        failed_ = true;
        error_detail_ = detail::stop_reason(parser_, err);
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
  head_.headers.reserve(12);  // < 1 KiB: glibc consolidates its fast bins on every larger request
  headers_.begin_message();
  chunk_extensions_.begin_message();
  return 0;
}

int ResponseParser::cb_chunk_extension(size_t len) {
  if (const char* why = chunk_extensions_.add(len, detail::ChunkExtensionLimits{})) return fail(why);
  return 0;
}

int ResponseParser::cb_chunk_header() {
  chunk_extensions_.end_chunk_size_line();
  return 0;
}

int ResponseParser::cb_status(const char* at, size_t len) {
  if (!headers_.add_bytes(len, max_header_bytes_)) return fail("response head too large");
  head_.reason.append(at, len);
  return 0;
}

int ResponseParser::header_status(detail::HeaderAccumulator::Status status) {
  switch (status) {
    case detail::HeaderAccumulator::Status::ok:
      return 0;
    case detail::HeaderAccumulator::Status::too_many_fields:
      return fail("too many response header fields");
    case detail::HeaderAccumulator::Status::too_many_bytes:
      break;
  }
  return fail("response head too large");
}

int ResponseParser::cb_header_field(const char* at, size_t len) {
  // Trailer fields (after the head) are bounded, then dropped.
  return header_status(
      headers_.on_field(at, len, !head_done_, kMaxResponseHeaderCount, max_header_bytes_));
}

int ResponseParser::cb_header_value(const char* at, size_t len) {
  return header_status(headers_.on_value(at, len, !head_done_, max_header_bytes_));
}

int ResponseParser::cb_header_value_complete() {
  headers_.on_value_complete();
  if (head_done_) return 0;
  return end_header();
}

int ResponseParser::end_header() {
  if (const char* reason = headers_.check_framing(detail::classify(headers_.field()))) {
    return fail(reason);
  }
  headers_.emit(head_.headers);
  return 0;
}

int ResponseParser::cb_headers_complete() {
  if (parser_.http_major != 1 || parser_.http_minor > 1) return fail("unsupported HTTP version");
  const int status = parser_.status_code;
  if (status == 101) {
    if (!upgrade_expected_) return fail("101 Switching Protocols without an upgrade request");
    head_.status = 101;
    head_.version_minor = parser_.http_minor;
    head_.body = BodyKind::none;
    head_.keep_alive = false;
    parser_.flags |= F_SKIPBODY;
    parser_.upgrade = 0;  // we stop at message complete ourselves
    head_done_ = true;
    sink_.on_response_head(std::move(head_));
    return 1;
  }
  if (status < 200) {
    // Interim response (100, 102, 103, ...): swallowed. 1xx never has a
    // body, whatever its headers say: skip it.
    interim_ = true;
    return 1;
  }
  if (headers_.te_count() > 0) {
    if (!headers_.te_exact_chunked() || (parser_.flags & F_CHUNKED) == 0)
      return fail("Transfer-Encoding other than chunked");
    if (headers_.cl_count() > 0) return fail("both Content-Length and Transfer-Encoding");
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
  headers_.begin_trailers();
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
  upgrade_expected_ = false;
  raw_head_bytes_ = 0;
  sink_.on_response_complete();
  return HPE_PAUSED;
}

}  // namespace fedproxy::http1

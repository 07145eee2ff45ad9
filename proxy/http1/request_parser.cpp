#include "proxy/http1/request_parser.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "proxy/http1/codec_detail.hpp"

namespace fedproxy::http1 {

namespace {

constexpr uint64_t kMaxContentLength = static_cast<uint64_t>(INT64_MAX);

}  // namespace

RequestParser::RequestParser(const ParserLimits& limits, RequestSink& sink)
    : limits_(limits), sink_(sink) {
  llhttp_settings_init(&settings_);
  detail::bind_common_callbacks<RequestParser>(settings_);
  settings_.on_method = [](llhttp_t* p, const char* at, size_t len) {
    return detail::parser_of<RequestParser>(p).cb_method(at, len);
  };
  settings_.on_url = [](llhttp_t* p, const char* at, size_t len) {
    return detail::parser_of<RequestParser>(p).cb_url(at, len);
  };
  settings_.on_version = [](llhttp_t* p, const char* at, size_t len) {
    return detail::parser_of<RequestParser>(p).cb_version(at, len);
  };
  // Strict mode: llhttp_init leaves every lenient flag off; none is set here.
  llhttp_init(&parser_, HTTP_REQUEST, &settings_);
  parser_.data = this;
}

int RequestParser::fail(ParseError error, const char* detail) {
  if (error_ == ParseError::none) {
    error_ = error;
    error_detail_ = detail;
  }
  llhttp_set_error_reason(&parser_, detail);
  return HPE_USER;
}

size_t RequestParser::feed(const char* data, size_t len) {
  if (error_ != ParseError::none || paused_ || len == 0) return 0;
  const bool head_pending = !head_done_;
  feed_begin_ = data;
  const llhttp_errno_t err = llhttp_execute(&parser_, data, len);
  feed_begin_ = nullptr;
  size_t consumed = len;
  if (err != HPE_OK) {
    consumed = detail::consumed_before_stop(parser_, data, len);
    if (!(err == HPE_PAUSED && paused_)) {
      // Any other stop is fatal: llhttp's own strict-mode errors, ours
      // (HPE_USER, error_ already set), and the pauses we never ask for
      // (HPE_PAUSED_UPGRADE, HPE_PAUSED_H2_UPGRADE for "PRI * HTTP/2.0").
      paused_ = false;
      if (error_ == ParseError::none) {
        error_ = ParseError::bad_request;
        error_detail_ = detail::stop_reason(parser_, err);
      }
      return consumed;
    }
  }
  remember_tail(data, consumed);
  if (head_pending && !head_done_ && !paused_) {
    // The callbacks bound what llhttp hands over, but not what it skips
    // (OWS around values, empty lines before a request). Bound the raw head.
    raw_head_bytes_ += consumed;
    const size_t cap = limits_.max_request_line + limits_.max_header_bytes +
                       64 * (limits_.max_header_count + 2);
    if (raw_head_bytes_ > cap) {
      error_ = ParseError::headers_too_large;
      error_detail_ = "request head too large";
    }
  }
  return consumed;
}

void RequestParser::resume() {
  if (!paused_) return;
  paused_ = false;
  llhttp_resume(&parser_);
}

bool RequestParser::finish() {
  if (error_ != ParseError::none) return false;
  return !in_message_;
}

void RequestParser::remember_tail(const char* data, size_t consumed) {
  constexpr size_t kTail = sizeof(tail_);
  if (consumed >= kTail) {
    std::memcpy(tail_, data + consumed - kTail, kTail);
    tail_len_ = kTail;
    return;
  }
  const size_t keep = std::min(tail_len_, kTail - consumed);
  std::memmove(tail_, tail_ + tail_len_ - keep, keep);
  std::memcpy(tail_ + keep, data, consumed);
  tail_len_ = keep + consumed;
}

// llhttp accepts "RTSP/1.0" and "ICE/1.0" request lines and reports them as
// version 1.0; it has no protocol callback. The version span starts right
// after the protocol name, so look at the five bytes before it.
bool RequestParser::preceded_by_http_slash(const char* at) const {
  if (feed_begin_ == nullptr || at < feed_begin_) return false;
  char buf[5];
  const size_t in_feed = static_cast<size_t>(at - feed_begin_);
  const size_t from_feed = std::min<size_t>(5, in_feed);
  const size_t from_tail = 5 - from_feed;
  if (from_tail > tail_len_) return false;
  std::memcpy(buf, tail_ + tail_len_ - from_tail, from_tail);
  std::memcpy(buf + from_tail, at - from_feed, from_feed);
  return std::memcmp(buf, "HTTP/", 5) == 0;
}

int RequestParser::cb_message_begin() {
  in_message_ = true;
  head_done_ = false;
  head_ = RequestHead{};
  head_.headers.reserve(12);  // < 1 KiB: glibc consolidates its fast bins on every larger request
  headers_.begin_message();
  chunk_extensions_.begin_message();
  line_bytes_ = 0;
  host_count_ = 0;
  version_seen_ = false;
  return 0;
}

int RequestParser::cb_method(const char* at, size_t len) {
  line_bytes_ += len;
  if (line_bytes_ > limits_.max_request_line) return fail(ParseError::uri_too_long, "request line too long");
  head_.method.append(at, len);
  return 0;
}

int RequestParser::cb_url(const char* at, size_t len) {
  // The method is known once the target starts. The proxy does not tunnel.
  if (parser_.method == HTTP_CONNECT) return fail(ParseError::bad_request, "CONNECT is not supported");
  line_bytes_ += len;
  if (line_bytes_ > limits_.max_request_line) return fail(ParseError::uri_too_long, "request line too long");
  head_.target.append(at, len);
  return 0;
}

int RequestParser::cb_version(const char* at, size_t len) {
  if (!version_seen_) {
    version_seen_ = true;
    if (!preceded_by_http_slash(at)) return fail(ParseError::bad_request, "protocol is not HTTP");
  }
  line_bytes_ += len;
  if (line_bytes_ > limits_.max_request_line) return fail(ParseError::uri_too_long, "request line too long");
  return 0;
}

int RequestParser::header_status(detail::HeaderAccumulator::Status status) {
  switch (status) {
    case detail::HeaderAccumulator::Status::ok:
      return 0;
    case detail::HeaderAccumulator::Status::too_many_fields:
      return fail(ParseError::headers_too_large, "too many header fields");
    case detail::HeaderAccumulator::Status::too_many_bytes:
      break;
  }
  return fail(ParseError::headers_too_large, "header section too large");
}

int RequestParser::cb_header_field(const char* at, size_t len) {
  // Trailer fields (after the head) are bounded, then dropped.
  return header_status(headers_.on_field(at, len, !head_done_, limits_.max_header_count,
                                         limits_.max_header_bytes));
}

int RequestParser::cb_header_value(const char* at, size_t len) {
  return header_status(headers_.on_value(at, len, !head_done_, limits_.max_header_bytes));
}

int RequestParser::cb_header_value_complete() {
  headers_.on_value_complete();
  if (head_done_) return 0;
  return end_header();
}

int RequestParser::end_header() {
  using detail::Special;
  const Special kind = detail::classify(headers_.field());
  if (const char* reason = headers_.check_framing(kind)) {
    return fail(ParseError::bad_request, reason);
  }
  if (kind == Special::host && ++host_count_ > 1) {
    return fail(ParseError::bad_request, "duplicate Host");
  }
  if (kind == Special::expect && iequals(headers_.value(), "100-continue")) {
    head_.expect_continue = true;
  }
  headers_.emit(head_.headers);
  return 0;
}

int RequestParser::cb_headers_complete() {
  // llhttp accepts HTTP/0.9 and HTTP/2.0 request lines.
  if (parser_.http_major != 1 || parser_.http_minor > 1)
    return fail(ParseError::bad_request, "unsupported HTTP version");
  if (parser_.method == HTTP_CONNECT) return fail(ParseError::bad_request, "CONNECT is not supported");
  if (headers_.te_count() > 0) {
    if (!headers_.te_exact_chunked())
      return fail(ParseError::bad_request, "Transfer-Encoding other than chunked");
    if (headers_.cl_count() > 0) return fail(ParseError::bad_request, "both Content-Length and Transfer-Encoding");
    if (parser_.http_minor == 0)
      return fail(ParseError::bad_request, "Transfer-Encoding in an HTTP/1.0 request");
    if ((parser_.flags & F_CHUNKED) == 0) return fail(ParseError::bad_request, "bad Transfer-Encoding");
  }
  head_.version_minor = parser_.http_minor;
  if (parser_.flags & F_CHUNKED) {
    head_.body = BodyKind::chunked;
  } else if (parser_.flags & F_CONTENT_LENGTH) {
    if (parser_.content_length > kMaxContentLength)
      return fail(ParseError::bad_request, "Content-Length too large");
    if (parser_.content_length > 0) {
      head_.body = BodyKind::content_length;
      head_.content_length = parser_.content_length;
    }
  }
  head_.keep_alive = llhttp_should_keep_alive(&parser_) != 0;
  if (head_.version_minor == 0) head_.expect_continue = false;  // RFC 9110 10.1.1
  // "Connection: upgrade" + "Upgrade: x": llhttp would end the message after
  // the head (or after the body) and return HPE_PAUSED_UPGRADE, leaving the
  // rest of the stream unparsed. The proxy does not upgrade: parse on as HTTP.
  parser_.upgrade = 0;
  head_done_ = true;
  headers_.begin_trailers();
  sink_.on_request_head(std::move(head_));
  return 0;
}

int RequestParser::cb_body(const char* at, size_t len) {
  sink_.on_request_body(at, len);
  return 0;
}

int RequestParser::cb_chunk_extension(size_t len) {
  if (const char* why = chunk_extensions_.add(len, limits_.chunk_extensions)) {
    return fail(ParseError::bad_request, why);
  }
  return 0;
}

int RequestParser::cb_chunk_header() {
  chunk_extensions_.end_chunk_size_line();
  return 0;
}

int RequestParser::cb_message_complete() {
  in_message_ = false;
  head_done_ = false;
  paused_ = true;
  raw_head_bytes_ = 0;
  sink_.on_request_complete();
  return HPE_PAUSED;
}

}  // namespace fedproxy::http1

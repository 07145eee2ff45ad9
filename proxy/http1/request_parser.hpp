// I/O-free HTTP/1.1 request parser on llhttp (strict mode) plus the extra
// checks of SPEC §1. Bytes in, events out. Pauses after every complete
// message so the next pipelined request is not parsed before resume().
//
// Checks added on top of llhttp's strict mode (it accepts these): a
// Transfer-Encoding that is not exactly "chunked" ("gzip, chunked", trailing
// OWS), Transfer-Encoding in HTTP/1.0, versions other than 1.0/1.1 (llhttp
// takes 0.9 and 2.0), protocols other than HTTP ("RTSP/1.0", "ICE/1.0"),
// CONNECT, a duplicate Host, Content-Length above INT64_MAX. Header-level
// rejections happen before on_request_head. "Upgrade" requests are parsed as
// ordinary requests. Trailers of chunked bodies are checked against the
// same limits (with a fresh budget) and dropped. Chunk extensions are
// bounded per chunk and per message (ParserLimits) and never passed on.
//
// Sink callbacks run inside feed(); they must not call back into the parser.
#pragma once

#include <cstddef>
#include <string>

#include <llhttp.h>

#include "proxy/http1/codec_detail.hpp"
#include "proxy/http1/message.hpp"

namespace fedproxy::http1 {

struct ParserLimits {
  size_t max_request_line = 8192;  // method + target + version; over → uri_too_long (414)
  size_t max_header_bytes = 16384; // all header names+values; over → headers_too_large (431)
  size_t max_header_count = 100;   // over → headers_too_large (431)
  detail::ChunkExtensionLimits chunk_extensions;  // over → bad_request (400)
};

enum class ParseError {
  none,
  bad_request,        // 400: malformed or ambiguous
  uri_too_long,       // 414
  headers_too_large,  // 431
};

class RequestSink {
 public:
  virtual ~RequestSink() = default;
  virtual void on_request_head(RequestHead&& head) = 0;
  virtual void on_request_body(const char* data, size_t len) = 0;  // de-chunked
  virtual void on_request_complete() = 0;
};

class RequestParser {
 public:
  RequestParser(const ParserLimits& limits, RequestSink& sink);
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  // Parse from data. Returns bytes consumed. Stops early when a message
  // completes (paused() turns true) or on error (error() != none); the
  // caller keeps the unconsumed rest and feeds it again after resume().
  size_t feed(const char* data, size_t len);
  void resume();
  bool paused() const { return paused_; }

  ParseError error() const { return error_; }
  const std::string& error_detail() const { return error_detail_; }  // for logs

  // True once any byte of the current message has been consumed and until
  // it completes: distinguishes "reading headers" from "idle keep-alive".
  bool in_message() const { return in_message_; }
  bool head_done() const { return head_done_; }

  // Peer closed its side. Returns true when that is clean (between messages).
  bool finish();

  // llhttp callbacks (public only for the C trampolines).
  int cb_message_begin();
  int cb_method(const char* at, size_t len);
  int cb_url(const char* at, size_t len);
  int cb_version(const char* at, size_t len);
  int cb_header_field(const char* at, size_t len);
  int cb_header_value(const char* at, size_t len);
  int cb_header_value_complete();
  int cb_headers_complete();
  int cb_body(const char* at, size_t len);
  int cb_message_complete();
  int cb_chunk_extension(size_t len);
  int cb_chunk_header();

 private:
  int fail(ParseError error, const char* detail);
  int end_header();
  int header_status(detail::HeaderAccumulator::Status status);
  bool preceded_by_http_slash(const char* at) const;
  void remember_tail(const char* data, size_t consumed);
  ParserLimits limits_;
  RequestSink& sink_;
  llhttp_t parser_;
  llhttp_settings_t settings_;
  RequestHead head_;
  detail::HeaderAccumulator headers_;
  detail::ChunkExtensionBudget chunk_extensions_;
  size_t line_bytes_ = 0;
  bool paused_ = false;
  bool in_message_ = false;
  bool head_done_ = false;
  ParseError error_ = ParseError::none;
  std::string error_detail_;
  // Per-message bookkeeping for the checks llhttp does not do itself.
  size_t raw_head_bytes_ = 0;  // bytes of feeds that held only head bytes (OWS, empty lines)
  unsigned host_count_ = 0;
  bool version_seen_ = false;
  // The protocol name ("HTTP/") sits just before the version span and may
  // have arrived in an earlier feed: keep the last bytes consumed.
  const char* feed_begin_ = nullptr;
  char tail_[8] = {};
  size_t tail_len_ = 0;
};

}  // namespace fedproxy::http1

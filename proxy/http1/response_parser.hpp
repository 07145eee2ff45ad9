// I/O-free HTTP/1.1 response parser (llhttp) for what the local app or a peer
// sends back. Pauses after every complete message.
//
// 1xx responses are swallowed (in_message() stays true until the final
// response completes); 101 is refused (failed()) unless expect_upgrade()
// was called for this response, when it is a final, body-less response after
// which the parser stops (the rest of the stream is the tunnel's); so is any
// Transfer-Encoding other than exactly "chunked" and versions other than
// 1.0/1.1, and chunk extensions over the limits of SPEC §1 (they are never
// passed on). max_header_bytes counts the status text plus header names and
// values; at most 1000 header fields. Sink callbacks run inside feed() and
// finish(); they must not call back into the parser.
#pragma once

#include <cstddef>
#include <string>

#include <llhttp.h>

#include "proxy/http1/codec_detail.hpp"
#include "proxy/http1/message.hpp"

namespace fedproxy::http1 {

class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  virtual void on_response_head(ResponseHead&& head) = 0;  // final (non-1xx) responses only
  virtual void on_response_body(const char* data, size_t len) = 0;  // de-chunked
  virtual void on_response_complete() = 0;
};

class ResponseParser {
 public:
  explicit ResponseParser(ResponseSink& sink, size_t max_header_bytes = 65536);
  ResponseParser(const ResponseParser&) = delete;
  ResponseParser& operator=(const ResponseParser&) = delete;

  // Tell the parser what the response answers: a response to HEAD has no body.
  // Call before feeding each response (it is reset when a response completes).
  // The head of a response to HEAD still reports the framing its headers
  // announce (content_length / chunked / until_close) so it can be passed on.
  void expect_response_to(std::string_view method);
  // The request asked for a WebSocket upgrade: a 101 ends the HTTP stream.
  void expect_upgrade() { upgrade_expected_ = true; }

  size_t feed(const char* data, size_t len);  // like RequestParser::feed
  void resume();
  bool paused() const { return paused_; }
  bool failed() const { return failed_; }
  const std::string& error_detail() const { return error_detail_; }
  bool in_message() const { return in_message_; }
  // Upstream closed. Completes an until-close body (fires on_response_complete)
  // and returns true; false when the close truncated a message.
  bool finish();

  int cb_message_begin();
  int cb_status(const char* at, size_t len);
  int cb_header_field(const char* at, size_t len);
  int cb_header_value(const char* at, size_t len);
  int cb_header_value_complete();
  int cb_headers_complete();
  int cb_body(const char* at, size_t len);
  int cb_message_complete();
  int cb_chunk_extension(size_t len);
  int cb_chunk_header();

 private:
  int fail(const char* detail);
  int end_header();
  int header_status(detail::HeaderAccumulator::Status status);
  ResponseSink& sink_;
  size_t max_header_bytes_;
  llhttp_t parser_;
  llhttp_settings_t settings_;
  ResponseHead head_;
  detail::HeaderAccumulator headers_;
  detail::ChunkExtensionBudget chunk_extensions_;
  bool head_request_ = false;
  bool interim_ = false;  // current message is 1xx: swallowed
  bool upgrade_expected_ = false;
  bool paused_ = false;
  bool in_message_ = false;
  bool failed_ = false;
  std::string error_detail_;
  bool head_done_ = false;
  size_t raw_head_bytes_ = 0;
};

}  // namespace fedproxy::http1

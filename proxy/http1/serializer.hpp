// Writing HTTP/1.1 heads and body framing into byte buffers. Hop-by-hop
// headers (SPEC §1) and the original framing headers are never copied:
// framing is re-written from the parsed BodyKind.
#pragma once

#include <string>
#include <string_view>

#include "proxy/http1/message.hpp"

namespace fedproxy::http1 {

// Connection, Keep-Alive, Proxy-*, TE, Trailer, Upgrade, Transfer-Encoding,
// Content-Length (framing is re-written), Expect (answered by the proxy).
bool is_hop_by_hop(std::string_view name);

// Remove hop-by-hop headers, plus any header named in a Connection header.
// Run it on what the peer sent BEFORE adding proxy-generated headers, or a
// "Connection: X-Federation-Peer" would strip them.
void remove_hop_by_hop(Headers& headers);

// "METHOD target HTTP/1.1\r\n" + headers + framing + "Connection: keep-alive|close" + "\r\n".
// Framing: content_length → "Content-Length: n"; chunked → "Transfer-Encoding: chunked";
// none → nothing (or "Content-Length: 0" for POST/PUT/PATCH).
// extra_lines: preformatted "Name: value\r\n" lines added after the headers.
void write_request_head(const RequestHead& head, std::string_view target,
                        bool keep_alive, std::string& out, std::string_view extra_lines = {});
// The same with the Connection line chosen: keep-alive, close, or the
// WebSocket upgrade lines.
enum class ConnectionLine { keep_alive, close, websocket_upgrade };
void write_request_head(const RequestHead& head, std::string_view target, ConnectionLine connection,
                        std::string& out, std::string_view extra_lines = {});

// "HTTP/1.1 status reason\r\n" + headers + framing + Connection + "\r\n".
// until_close bodies are re-framed as chunked for HTTP/1.1 clients.
// chunked_ok=false (HTTP/1.0 client): chunked/until_close bodies get no
// framing header and must be ended by closing the connection.
void write_response_head(const ResponseHead& head, bool keep_alive, std::string& out,
                         bool chunked_ok = true);

// A WebSocket handshake request (RFC 6455 §4.1): GET, HTTP/1.1, no body,
// "Upgrade: websocket" and "upgrade" among the Connection tokens. The only
// upgrade fedproxy carries (SPEC §1); any other Upgrade is dropped.
bool is_websocket_upgrade(const RequestHead& head);

// The lines that ask the next hop for the upgrade, added after
// remove_hop_by_hop stripped the client's own.
inline constexpr std::string_view kWebSocketUpgradeLines = "Connection: Upgrade\r\nUpgrade: websocket\r\n";

// "HTTP/1.1 101 ...\r\n" + end-to-end headers + the upgrade lines: the head
// after which the connection is a tunnel.
void write_switching_protocols_head(const ResponseHead& head, std::string& out);

// Chunked framing helpers: "<hex>\r\n<data>\r\n" and "0\r\n\r\n".
// write_chunk writes nothing for len == 0 (that would be the last chunk).
void write_chunk(const char* data, size_t len, std::string& out);
void write_last_chunk(std::string& out);

const char* reason_phrase(int status);

// A complete response fedproxy itself produces, not the app (refusals, the
// node manifest, the admin endpoints): the one writer of such responses.
struct LocalResponse {
  int status = 200;
  std::string_view content_type = "application/json";
  std::string_view body;
  std::string_view request_id;  // an X-Request-Id header when not empty
  bool close = false;           // "Connection: close" (keep-alive is HTTP/1.1's default)
  std::string_view extra_headers;  // preformatted "Name: value\r\n" lines
  bool head_only = false;          // answers HEAD: the head alone (Content-Length kept)
};
void write_local_response(const LocalResponse& r, std::string& out);

// A refusal in the SPEC §6 shape, through write_local_response:
// Content-Type: application/json, body {"error","message","request_id"},
// Content-Length, Connection: close when close is true.
// extra_headers: preformatted "Name: value\r\n" lines (e.g. Retry-After).
std::string make_error_response(int status, std::string_view code, std::string_view message,
                                std::string_view request_id, bool close,
                                std::string_view extra_headers = {});

// {"error","message","request_id"}: the SPEC §6 body.
std::string make_error_body(std::string_view code, std::string_view message, std::string_view request_id);

// X-Request-Id kept when 1..128 chars of [A-Za-z0-9._:-].
bool is_valid_request_id(std::string_view id);

}  // namespace fedproxy::http1

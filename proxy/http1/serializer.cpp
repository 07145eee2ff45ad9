#include "proxy/http1/serializer.hpp"

#include <array>
#include <charconv>
#include <cstdint>
#include <vector>

#include "config/json.hpp"

namespace fedproxy::http1 {

namespace {

inline void put_uint(uint64_t v, std::string& out) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, static_cast<size_t>(res.ptr - buf));
}

inline void put_header(std::string_view name, std::string_view value, std::string& out) {
  out.append(name);
  out.append(": ", 2);
  out.append(value);
  out.append("\r\n", 2);
}

size_t headers_size(const Headers& headers) {
  size_t n = 0;
  for (const Header& h : headers) n += h.name.size() + h.value.size() + 4;
  return n;
}

void put_connection(ConnectionLine line, std::string& out) {
  switch (line) {
    case ConnectionLine::keep_alive: out.append("Connection: keep-alive\r\n"); break;
    case ConnectionLine::close: out.append("Connection: close\r\n"); break;
    case ConnectionLine::websocket_upgrade: out.append(kWebSocketUpgradeLines); break;
  }
}

void put_connection(bool keep_alive, std::string& out) {
  put_connection(keep_alive ? ConnectionLine::keep_alive : ConnectionLine::close, out);
}

}  // namespace

bool is_hop_by_hop(std::string_view name) {
  if (istarts_with(name, "proxy-")) return true;
  switch (name.size()) {
    case 2:
      return iequals(name, "te");
    case 6:
      return iequals(name, "expect");
    case 7:
      return iequals(name, "upgrade") || iequals(name, "trailer");
    case 10:
      return iequals(name, "connection") || iequals(name, "keep-alive");
    case 14:
      return iequals(name, "content-length");
    case 17:
      return iequals(name, "transfer-encoding");
    default:
      return false;
  }
}

void remove_hop_by_hop(Headers& headers) {
  // Tokens listed in Connection headers ("Connection: close, X-Foo") name
  // further hop-by-hop fields. Views point into the header values, so decide
  // for every field first and only then compact the vector.
  std::vector<std::string_view> named;
  for (const Header& h : headers) {
    if (!iequals(h.name, "connection")) continue;
    std::string_view v = h.value;
    while (!v.empty()) {
      const size_t comma = v.find(',');
      std::string_view token = v.substr(0, comma);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) token.remove_prefix(1);
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
      // "keep-alive" (the usual value) is in the fixed list already: no
      // allocation for it.
      if (!token.empty() && !is_hop_by_hop(token)) named.push_back(token);
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  auto drop = [&named](const Header& h) {
    if (is_hop_by_hop(h.name)) return true;
    for (std::string_view t : named)
      if (iequals(h.name, t)) return true;
    return false;
  };
  if (named.empty()) {
    std::erase_if(headers, drop);
    return;
  }
  std::vector<char> remove(headers.size());
  for (size_t i = 0; i < headers.size(); ++i) remove[i] = drop(headers[i]) ? 1 : 0;
  size_t w = 0;
  for (size_t i = 0; i < headers.size(); ++i) {
    if (remove[i]) continue;
    if (w != i) headers[w] = std::move(headers[i]);
    ++w;
  }
  headers.resize(w);
}

namespace {

// The fields a proxy passes on: all but the hop-by-hop ones.
void put_end_to_end_headers(const Headers& headers, std::string& out) {
  for (const Header& h : headers) {
    if (is_hop_by_hop(h.name)) continue;
    put_header(h.name, h.value, out);
  }
}

void put_content_length(uint64_t length, std::string& out) {
  out.append("Content-Length: ");
  put_uint(length, out);
  out.append("\r\n", 2);
}

}  // namespace

void write_request_head(const RequestHead& head, std::string_view target, bool keep_alive,
                        std::string& out, std::string_view extra_lines) {
  write_request_head(head, target, keep_alive ? ConnectionLine::keep_alive : ConnectionLine::close, out,
                     extra_lines);
}

void write_request_head(const RequestHead& head, std::string_view target, ConnectionLine connection,
                        std::string& out, std::string_view extra_lines) {
  out.reserve(out.size() + head.method.size() + target.size() + headers_size(head.headers) + extra_lines.size() +
              96);
  out.append(head.method);
  out.push_back(' ');
  out.append(target);
  out.append(" HTTP/1.1\r\n", 11);
  put_end_to_end_headers(head.headers, out);
  out.append(extra_lines);
  switch (head.body) {
    case BodyKind::content_length:
      put_content_length(head.content_length, out);
      break;
    case BodyKind::chunked:
    case BodyKind::until_close:  // not a request framing; chunked is the only safe choice
      out.append("Transfer-Encoding: chunked\r\n");
      break;
    case BodyKind::none:
      if (head.method == "POST" || head.method == "PUT" || head.method == "PATCH")
        out.append("Content-Length: 0\r\n");
      break;
  }
  put_connection(connection, out);
  out.append("\r\n", 2);
}

void write_response_head(const ResponseHead& head, bool keep_alive, std::string& out, bool chunked_ok) {
  const char* phrase = head.reason.empty() ? reason_phrase(head.status) : nullptr;
  out.reserve(out.size() + headers_size(head.headers) + head.reason.size() + 112);
  out.append("HTTP/1.1 ", 9);
  put_uint(static_cast<uint64_t>(head.status < 0 ? 0 : head.status), out);
  out.push_back(' ');
  if (phrase != nullptr)
    out.append(phrase);
  else
    out.append(head.reason);
  out.append("\r\n", 2);
  put_end_to_end_headers(head.headers, out);
  switch (head.body) {
    case BodyKind::content_length:
      put_content_length(head.content_length, out);
      break;
    case BodyKind::chunked:
    case BodyKind::until_close:
      // An HTTP/1.0 client cannot read chunked framing: the body then ends
      // with the connection (the caller closes it).
      if (chunked_ok) out.append("Transfer-Encoding: chunked\r\n");
      break;
    case BodyKind::none:
      if (!(head.status < 200 || head.status == 204 || head.status == 304))
        out.append("Content-Length: 0\r\n");
      break;
  }
  put_connection(keep_alive, out);
  out.append("\r\n", 2);
}

namespace {
// Whether a comma-separated header value lists `token` (case-insensitive).
bool lists_token(std::string_view v, std::string_view token) {
  while (!v.empty()) {
    const size_t comma = v.find(',');
    std::string_view t = v.substr(0, comma);
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    if (iequals(t, token)) return true;
    if (comma == std::string_view::npos) break;
    v.remove_prefix(comma + 1);
  }
  return false;
}
}  // namespace

bool is_websocket_upgrade(const RequestHead& head) {
  if (head.method != "GET" || head.version_minor < 1 || head.body != BodyKind::none) return false;
  bool upgrade = false, connection = false;
  for (const Header& h : head.headers) {
    if (iequals(h.name, "upgrade")) upgrade = upgrade || lists_token(h.value, "websocket");
    if (iequals(h.name, "connection")) connection = connection || lists_token(h.value, "upgrade");
  }
  return upgrade && connection;
}

void write_switching_protocols_head(const ResponseHead& head, std::string& out) {
  out.append("HTTP/1.1 101 ");
  out.append(head.reason.empty() ? std::string_view("Switching Protocols") : std::string_view(head.reason));
  out.append("\r\n", 2);
  put_end_to_end_headers(head.headers, out);
  out.append(kWebSocketUpgradeLines);
  out.append("\r\n", 2);
}

void write_chunk(const char* data, size_t len, std::string& out) {
  if (len == 0) return;  // a zero-size chunk would end the body
  char hex[2 * sizeof(size_t)];
  auto res = std::to_chars(hex, hex + sizeof(hex), len, 16);
  out.reserve(out.size() + static_cast<size_t>(res.ptr - hex) + len + 4);
  out.append(hex, static_cast<size_t>(res.ptr - hex));
  out.append("\r\n", 2);
  out.append(data, len);
  out.append("\r\n", 2);
}

void write_last_chunk(std::string& out) { out.append("0\r\n\r\n", 5); }

const char* reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 417: return "Expectation Failed";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

std::string make_error_body(std::string_view code, std::string_view message, std::string_view request_id) {
  std::string body;
  body.reserve(48 + code.size() + message.size() + request_id.size());
  body.append("{\"error\":\"");
  body.append(config::json::escape(code));
  body.append("\",\"message\":\"");
  body.append(config::json::escape(message));
  body.append("\",\"request_id\":\"");
  body.append(config::json::escape(request_id));
  body.append("\"}");
  return body;
}

std::string make_error_response(int status, std::string_view code, std::string_view message,
                                 std::string_view request_id, bool close,
                                 std::string_view extra_headers) {
  const std::string body = make_error_body(code, message, request_id);

  LocalResponse r;
  r.status = status;
  r.body = body;
  r.close = close;
  r.extra_headers = extra_headers;
  std::string out;
  write_local_response(r, out);
  return out;
}

void write_local_response(const LocalResponse& r, std::string& out) {
  out.reserve(out.size() + 160 + r.extra_headers.size() + r.request_id.size() + r.body.size());
  out.append("HTTP/1.1 ");
  put_uint(static_cast<uint64_t>(r.status < 0 ? 0 : r.status), out);
  out.push_back(' ');
  out.append(reason_phrase(r.status));
  out.append("\r\nContent-Type: ");
  out.append(r.content_type);
  out.append("\r\nContent-Length: ");
  put_uint(r.body.size(), out);
  out.append("\r\n", 2);
  if (!r.request_id.empty()) out.append("X-Request-Id: ").append(r.request_id).append("\r\n", 2);
  if (r.close) out.append("Connection: close\r\n");
  out.append(r.extra_headers);
  out.append("\r\n", 2);
  if (!r.head_only) out.append(r.body);
}

namespace {
// Bytes allowed in a request id: A-Z a-z 0-9 . _ : - (one lookup per byte:
// it runs on every request).
constexpr std::array<bool, 256> kRequestIdByte = [] {
  std::array<bool, 256> t{};
  for (int c = 'A'; c <= 'Z'; ++c) t[static_cast<size_t>(c)] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[static_cast<size_t>(c)] = true;
  for (int c = '0'; c <= '9'; ++c) t[static_cast<size_t>(c)] = true;
  for (char c : {'.', '_', ':', '-'}) t[static_cast<unsigned char>(c)] = true;
  return t;
}();
}  // namespace

bool is_valid_request_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char ch : id) {
    if (!kRequestIdByte[static_cast<unsigned char>(ch)]) return false;
  }
  return true;
}

}  // namespace fedproxy::http1

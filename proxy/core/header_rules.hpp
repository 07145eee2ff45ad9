// Header hygiene (SPEC §5): what a peer's header section may hold before
// anything is decided on it, what it may never assert to the local app, and
// the forwarding headers fedproxy writes in their place. Pure functions over
// parsed headers: no I/O, testable with tables.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "proxy/http1/message.hpp"

namespace fedproxy::core {

// http.headers_with_underscores: WSGI/CGI (and nginx's underscores_in_headers)
// map "_" and "-" to the same variable, so "X_Federation_Peer" could reach the
// app as the identity header fedproxy sets.
using UnderscoreHeaders = config::HttpConfig::Underscores;

// Checks a request head a peer sent. Returns nullptr when it may go on (with
// underscore names removed under UnderscoreHeaders::drop), else why it is
// refused (400 bad_request; one sentence for the error body and the log):
// - a header name holding "_" (UnderscoreHeaders::reject);
// - more than one Authorization header (which one is the credential?);
//   duplicate Host is refused by the parser already;
// - a Connection header naming Host, Content-Length, Transfer-Encoding,
//   Authorization, X-Request-Id or any X-Federation-* field: a proxy strips
//   what Connection names, so the app would get a different request than
//   the one that was authorized.
const char* check_peer_headers(http1::Headers& headers, UnderscoreHeaders underscores);

// Removes what only fedproxy may tell the app (SPEC §5): X-Federation-*,
// X-Forwarded-Client-Cert, Client-Cert, Client-Cert-Chain; every
// X-Forwarded-* field and Forwarded, X-Real-IP, X-Client-IP, True-Client-IP
// (the peer's address is written by fedproxy); X-Original-URL and
// X-Rewrite-URL (frameworks route by them instead of the request-target).
// A name with "_" is judged with "_" read as "-" (X_Federation_Peer too).
void strip_peer_asserted_headers(http1::Headers& headers);

// Appends X-Forwarded-For, X-Forwarded-Proto and Forwarded (RFC 7239) for
// the TCP peer address `ip` (IPv4 or IPv6 text) and the scheme it used.
void append_forwarding_lines(std::string& lines, std::string_view ip, bool tls);

}  // namespace fedproxy::core

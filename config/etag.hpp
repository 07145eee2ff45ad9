// Version tags of management API objects (SPEC §12): the SHA-256 of an
// object's canonical JSON. picojson serialises object members sorted by
// name (std::map), so equal objects give equal text whatever their order.
#pragma once

#include <string>
#include <string_view>

#include <picojson.h>

namespace fedproxy::config {

std::string canonical_json(const picojson::value& v);
// SHA-256 of bytes, 64 lowercase hex: the one text digest of config/ and
// policy/ (audit chain, admin token digests, ETags).
std::string sha256_hex(std::string_view data);
// SHA-256 (64 lowercase hex) of canonical_json(v): what audit events carry.
std::string object_digest(const picojson::value& v);
// The ETag header value: the digest in double quotes.
std::string etag(const picojson::value& v);

}  // namespace fedproxy::config

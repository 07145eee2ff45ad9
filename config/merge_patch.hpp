// JSON merge patch (RFC 7396): what a PATCH of the management API (SPEC §12)
// applies to a peer or grant object.
#pragma once

#include <picojson.h>

namespace fedproxy::config {

// RFC 7396 §2 MergePatch(target, patch): a non-object patch replaces the
// target; an object patch merges member by member, null removing a member.
picojson::value merge_patch(const picojson::value& target, const picojson::value& patch);

}  // namespace fedproxy::config

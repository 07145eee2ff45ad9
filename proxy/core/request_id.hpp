// Request ids: random UUIDv4 text, from a per-thread generator seeded once.
#pragma once

#include <string>

namespace fedproxy::core {
std::string new_request_id();
}

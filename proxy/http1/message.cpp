#include "proxy/http1/message.hpp"

namespace fedproxy::http1 {

const Header* find_header(const Headers& headers, std::string_view name) {
  for (const Header& h : headers) {
    if (iequals(h.name, name)) return &h;
  }
  return nullptr;
}

}  // namespace fedproxy::http1

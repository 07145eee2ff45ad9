#include "config/merge_patch.hpp"

namespace fedproxy::config {

picojson::value merge_patch(const picojson::value& target, const picojson::value& patch) {
  if (!patch.is<picojson::object>()) return patch;
  picojson::object result = target.is<picojson::object>() ? target.get<picojson::object>() : picojson::object{};
  for (const auto& [name, value] : patch.get<picojson::object>()) {
    if (value.is<picojson::null>()) {
      result.erase(name);
    } else {
      auto it = result.find(name);
      result[name] = merge_patch(it == result.end() ? picojson::value() : it->second, value);
    }
  }
  return picojson::value(std::move(result));
}

}  // namespace fedproxy::config

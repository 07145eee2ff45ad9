// fedproxy's version and the versions of the libraries it runs with, for
// `fedproxy version` and the fedproxy_build_info metric.
#pragma once

#include <string>

namespace fedproxy::app {

struct BuildInfo {
  std::string version;  // meson project version
  std::string mbedtls;  // mbedtls_version_get_string(): the linked library
  std::string libuv;    // uv_version_string(): the linked library
  std::string llhttp;   // the headers built against (llhttp has no runtime query)
};

const BuildInfo& build_info();

}  // namespace fedproxy::app

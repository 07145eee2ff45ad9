#include "proxy/app/build_info.hpp"

#include <llhttp.h>
#include <mbedtls/version.h>

#include "proxy/net/loop.hpp"

#ifndef FEDPROXY_VERSION
#define FEDPROXY_VERSION "unknown"
#endif

namespace fedproxy::app {

const BuildInfo& build_info() {
  static const BuildInfo info = [] {
    BuildInfo b;
    b.version = FEDPROXY_VERSION;
    char mbed[32] = {};
    mbedtls_version_get_string(mbed);
    b.mbedtls = mbed;
    b.libuv = net::libuv_version();
    b.llhttp = std::to_string(LLHTTP_VERSION_MAJOR) + "." + std::to_string(LLHTTP_VERSION_MINOR) + "." +
               std::to_string(LLHTTP_VERSION_PATCH);
    return b;
  }();
  return info;
}

}  // namespace fedproxy::app

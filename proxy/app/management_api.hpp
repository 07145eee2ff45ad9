// The management API (SPEC §12): /v1/peers and /v1/grants on the admin
// listener. A change is validated exactly as `fedproxy check` validates
// (the whole snapshot is built from config file + state + the change),
// then persisted in state.path (atomically), then applied by the same
// snapshot swap as a reload, then answered — so the next request of a
// kept-alive connection already sees it. Admin requests run on the main
// loop one at a time, so changes are serial (If-Match makes lost updates
// visible: 412).
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "policy/audit.hpp"
#include "proxy/app/snapshot.hpp"
#include "proxy/core/admin_server.hpp"

namespace fedproxy::app {

class ManagementApi {
 public:
  struct Hooks {
    std::function<std::shared_ptr<const Snapshot>()> current;     // the snapshot serving now
    std::function<void(std::shared_ptr<const Snapshot>)> apply;  // the reload's swap
    std::function<void(std::string_view, const policy::AuditFields&)> audit;
    // The CRLs fetched from tls.crl_urls (a candidate must keep them).
    std::function<std::map<std::string, std::string>()> fetched_crls;
  };
  ManagementApi(std::string config_path, Hooks hooks) : config_path_(std::move(config_path)), hooks_(std::move(hooks)) {}

  // /v1/peers[/...] and /v1/grants[/...]
  static bool handles(std::string_view path);
  core::AdminResponse handle(const core::AdminRequest& request);

 private:
  std::string config_path_;
  Hooks hooks_;
};

}  // namespace fedproxy::app

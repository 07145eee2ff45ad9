// Joining two organisations (SPEC §13). On the inviter: POST /v1/invites
// (admin API) and the peering listener's GET /v1/join/ca and POST /v1/join.
// On the joiner: POST /v1/joins (admin API), which runs the join on a thread
// of its own (join_client.hpp) and answers when it is done. Both sides store
// the other as a peer through the management API's path: validated as
// `fedproxy check` would, persisted in state.path, applied by the snapshot
// swap.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "config/attempt_limiter.hpp"
#include "config/state.hpp"
#include "proxy/app/management_api.hpp"
#include "proxy/core/admin_server.hpp"
#include "proxy/net/loop.hpp"

namespace fedproxy::app {

struct JoinReply;

// Failed join attempts a source address may make per window (then 429).
constexpr int kJoinFailuresPerWindow = 5;
constexpr int64_t kJoinWindowMs = 60000;
// The peering listener reads small bodies only: a manifest and a CA bundle.
constexpr size_t kMaxJoinBodyBytes = 64 * 1024;

class JoinService {
 public:
  JoinService(net::Loop& loop, std::string config_path, ManagementApi::Hooks hooks);
  ~JoinService();

  // /v1/invites and /v1/joins on the admin API.
  static bool handles(std::string_view path);
  core::AdminResponse handle_admin(const core::AdminRequest& request);
  // The peering listener (no admin gate: the join secret is the credential).
  core::AdminHandler& peering_handler() { return *peering_; }

  // Orgs joined by invite or by join (state `joins`): `pending` until their
  // first successful heartbeat.
  std::set<std::string> joined_orgs() const;

  core::AdminResponse handle_peering(const core::AdminRequest& request);

 private:
  core::AdminResponse create_invite(const core::AdminRequest& request);
  core::AdminResponse list_invites() const;
  core::AdminResponse start_join(const core::AdminRequest& request);
  core::AdminResponse accept_join(const core::AdminRequest& request);
  core::AdminResponse serve_ca();
  void finished_joins();  // on the loop: answers of the join threads
  core::AdminResponse finish_join(const JoinReply& reply, const std::string& actor,
                                  const std::string& request_id, const std::string& url);

  net::Loop& loop_;
  std::string config_path_;
  ManagementApi::Hooks hooks_;
  std::unique_ptr<core::AdminHandler> peering_;
  config::AttemptLimiter limiter_{kJoinFailuresPerWindow, kJoinWindowMs};
  net::AsyncWakeup wakeup_;
  std::mutex mu_;
  std::vector<std::function<void()>> done_;  // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace fedproxy::app

// One connection to Redis or Valkey on a loop (SPEC §14), through hiredis'
// async API and its libuv adapter. Works with hiredis 0.14 (Debian 12) and
// 1.x (Debian 13): only the API both have is used, and the timeouts are ours
// (0.14 has no async timeouts).
//
// - Nothing here blocks the loop: the host is resolved by the loop's
//   Resolver (hiredis would call getaddrinfo itself) and hiredis gets the
//   numeric address.
// - Every command has a deadline (command_timeout_ms). A command that misses
//   it, a connect that takes longer than connect_timeout_ms, or any error on
//   the socket ends the connection: every pending command is answered with
//   an error, and on_down is called once. The owner decides when to
//   connect() again.
// - Callbacks run on the loop. The client may be destroyed from any of them
//   except a command's own completion (use a Timer or the next tick).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <map>
#include <string>
#include <vector>

#include "config/redis_url.hpp"
#include "proxy/net/loop.hpp"

struct redisAsyncContext;

namespace fedproxy::net {

// A copy of a hiredis reply (RESP2).
struct RedisReply {
  enum class Kind : uint8_t { nil, integer, string, status, error, array };
  Kind kind = Kind::nil;
  int64_t integer = 0;
  std::string str;  // string, status, error
  std::vector<RedisReply> elements;
};

class RedisClient {
 public:
  struct Options {
    config::RedisUrl url;
    uint64_t connect_timeout_ms = 500;
    uint64_t command_timeout_ms = 100;
  };
  // ok = false: the command was not answered (error says why); an error
  // reply from the server is ok = true with reply.kind == error.
  using Done = std::function<void(bool ok, const RedisReply& reply, const std::string& error)>;

  RedisClient(Loop& loop, Options options, std::function<void()> on_up,
              std::function<void(const std::string& error)> on_down);
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  // Starts connecting (resolve, connect, AUTH, SELECT) unless connected or
  // connecting. on_up when ready, on_down when it fails.
  void connect();
  bool ready() const { return state_ == State::ready; }
  bool connecting() const { return state_ == State::resolving || state_ == State::connecting; }
  // Sends a command (pipelined behind the pending ones). False, and done is
  // never called, when the client is not ready.
  bool command(const std::vector<std::string>& argv, Done done);
  size_t pending() const { return pending_.size(); }
  // Ends the connection as a failure (on_down), from the next loop turn:
  // callable from a command's completion (an answer that makes no sense).
  void abort(const std::string& error);

  // hiredis callbacks (internal).
  void on_connected(int status);
  void on_disconnected(int status);
  void on_reply(uint64_t id, const void* reply);

 private:
  enum class State : uint8_t { idle, resolving, connecting, ready };
  struct Pending {
    uint64_t deadline_ms;
    Done done;
  };
  bool send(const std::vector<std::string>& argv, Done done);
  void start_connect(const std::string& address);
  void handshake_done();
  // Ends the connection: pending commands fail with `error`, on_down once.
  void fail(const std::string& error);
  void arm_timer();
  void on_timer();

  Loop& loop_;
  Options options_;
  std::function<void()> on_up_;
  std::function<void(const std::string&)> on_down_;
  State state_ = State::idle;
  redisAsyncContext* ctx_ = nullptr;  // owned while connected; hiredis frees it after on_disconnected
  uint64_t resolve_id_ = 0;
  uint64_t connect_deadline_ms_ = 0;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Pending> pending_;  // by id: ids grow, so the first is the oldest
  bool failing_ = false;                  // inside fail(): hiredis answers pending commands itself
  std::string fail_error_;                // why, while fail() runs
  std::string abort_error_;               // abort() asked: fail() from the timer
  bool destroying_ = false;
  Timer timer_;
};

// Flattens a reply for messages ("ERR ...", "(nil)", "42", "[1, 2]").
std::string to_string(const RedisReply& r);

}  // namespace fedproxy::net

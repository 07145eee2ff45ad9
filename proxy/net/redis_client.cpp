#include "proxy/net/redis_client.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
// The adapter is a header of static functions; this is its only includer.
#include <hiredis/adapters/libuv.h>

#include <utility>

#include "proxy/net/resolver.hpp"

namespace fedproxy::net {

namespace {

RedisClient* client_of(const redisAsyncContext* ac) { return static_cast<RedisClient*>(ac->data); }

void connect_cb(const redisAsyncContext* ac, int status) {
  if (RedisClient* c = client_of(ac)) c->on_connected(status);
}

void disconnect_cb(const redisAsyncContext* ac, int status) {
  if (RedisClient* c = client_of(ac)) c->on_disconnected(status);
}

void reply_cb(redisAsyncContext* ac, void* reply, void* privdata) {
  if (RedisClient* c = client_of(ac)) c->on_reply(reinterpret_cast<uintptr_t>(privdata), reply);
}

RedisReply copy_reply(const redisReply* r) {
  RedisReply out;
  switch (r->type) {
    case REDIS_REPLY_INTEGER:
      out.kind = RedisReply::Kind::integer;
      out.integer = r->integer;
      break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.kind = r->type == REDIS_REPLY_STRING   ? RedisReply::Kind::string
                 : r->type == REDIS_REPLY_STATUS ? RedisReply::Kind::status
                                                 : RedisReply::Kind::error;
      out.str.assign(r->str, r->len);
      break;
    case REDIS_REPLY_ARRAY:
      out.kind = RedisReply::Kind::array;
      for (size_t i = 0; i < r->elements; ++i) out.elements.push_back(copy_reply(r->element[i]));
      break;
    case REDIS_REPLY_NIL:
      break;
    default:  // RESP3 types (hiredis 1.x) are never asked for
      out.kind = RedisReply::Kind::error;
      out.str = "unexpected reply type " + std::to_string(r->type);
  }
  return out;
}

}  // namespace

std::string to_string(const RedisReply& r) {
  switch (r.kind) {
    case RedisReply::Kind::nil: return "(nil)";
    case RedisReply::Kind::integer: return std::to_string(r.integer);
    case RedisReply::Kind::string:
    case RedisReply::Kind::status:
    case RedisReply::Kind::error: return r.str;
    case RedisReply::Kind::array: {
      std::string out = "[";
      for (size_t i = 0; i < r.elements.size(); ++i) out += (i ? ", " : "") + to_string(r.elements[i]);
      return out + "]";
    }
  }
  return "";
}

RedisClient::RedisClient(Loop& loop, Options options, std::function<void()> on_up,
                         std::function<void(const std::string&)> on_down)
    : loop_(loop),
      options_(std::move(options)),
      on_up_(std::move(on_up)),
      on_down_(std::move(on_down)),
      timer_(loop, [this] { on_timer(); }) {}

RedisClient::~RedisClient() {
  destroying_ = true;
  if (resolve_id_) loop_.resolver().cancel(resolve_id_);
  if (ctx_) {
    redisAsyncContext* c = ctx_;
    ctx_ = nullptr;
    failing_ = true;
    redisAsyncFree(c);  // answers pending commands (ignored: destroying_) and closes the socket
  }
}

void RedisClient::connect() {
  if (state_ != State::idle) return;
  state_ = State::resolving;
  connect_deadline_ms_ = loop_.now_ms() + options_.connect_timeout_ms;
  arm_timer();
  const std::string host = options_.url.host.host;
  resolve_id_ = loop_.resolver().resolve(host, [this](const Resolution& r) {
    resolve_id_ = 0;
    if (!r.ok || r.addresses.empty()) {
      fail(r.error.empty() ? "cannot resolve " + options_.url.host.host : r.error);
      return;
    }
    start_connect(r.addresses.front());
  });
  if (resolve_id_ == 0 && state_ == State::resolving) fail("the loop is closing");
}

void RedisClient::start_connect(const std::string& address) {
  state_ = State::connecting;
  redisAsyncContext* c = redisAsyncConnect(address.c_str(), options_.url.host.port.value_or(6379));
  if (c == nullptr) {
    fail("out of memory");
    return;
  }
  if (c->err) {
    std::string why = c->errstr;
    redisAsyncFree(c);
    fail("connect to " + options_.url.display() + ": " + why);
    return;
  }
  if (redisLibuvAttach(c, loop_.raw()) != REDIS_OK) {
    redisAsyncFree(c);
    fail("cannot attach the Redis connection to the loop");
    return;
  }
  c->data = this;
  ctx_ = c;
  redisAsyncSetConnectCallback(c, connect_cb);
  redisAsyncSetDisconnectCallback(c, disconnect_cb);
}

void RedisClient::on_connected(int status) {
  if (status != REDIS_OK) {
    std::string why = ctx_ && ctx_->errstr[0] ? ctx_->errstr : "connection refused";
    ctx_ = nullptr;  // hiredis frees it after this callback
    fail("connect to " + options_.url.display() + ": " + why);
    return;
  }
  // AUTH and SELECT before anything else; ready when both answered.
  std::vector<std::vector<std::string>> steps;
  if (!options_.url.password.empty()) {
    if (options_.url.username.empty()) {
      steps.push_back({"AUTH", options_.url.password});
    } else {
      steps.push_back({"AUTH", options_.url.username, options_.url.password});
    }
  }
  if (options_.url.db != 0) steps.push_back({"SELECT", std::to_string(options_.url.db)});
  if (steps.empty()) {
    handshake_done();
    return;
  }
  auto left = std::make_shared<size_t>(steps.size());
  for (const auto& argv : steps) {
    send(argv, [this, left, what = argv[0]](bool ok, const RedisReply& reply, const std::string& error) {
      if (!ok) return;  // the connection failed: fail() reports it
      if (reply.kind == RedisReply::Kind::error) {
        // Not from inside hiredis' callback: the timer ends the connection.
        abort(what + " refused: " + reply.str);
        return;
      }
      (void)error;
      if (--*left == 0) handshake_done();
    });
  }
}

void RedisClient::handshake_done() {
  state_ = State::ready;
  arm_timer();
  if (on_up_) on_up_();
}

void RedisClient::on_disconnected(int status) {
  (void)status;
  if (failing_) return;  // we are freeing it (fail() or the destructor)
  std::string why = ctx_ && ctx_->errstr[0] ? ctx_->errstr : "closed by the server";
  ctx_ = nullptr;  // hiredis frees it after this callback
  fail("connection to " + options_.url.display() + " lost: " + why);
}

void RedisClient::on_reply(uint64_t id, const void* reply) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Done done = std::move(it->second.done);
  pending_.erase(it);
  if (destroying_) return;
  if (reply == nullptr) {
    // Not answered: the connection ended (fail() set the reason) or is ending.
    done(false, RedisReply{}, fail_error_.empty() ? "connection lost" : fail_error_);
    return;
  }
  done(true, copy_reply(static_cast<const redisReply*>(reply)), std::string());
}

bool RedisClient::command(const std::vector<std::string>& argv, Done done) {
  if (state_ != State::ready) return false;
  return send(argv, std::move(done));
}

bool RedisClient::send(const std::vector<std::string>& argv, Done done) {
  if (ctx_ == nullptr) return false;
  std::vector<const char*> args;
  std::vector<size_t> lens;
  args.reserve(argv.size());
  lens.reserve(argv.size());
  for (const std::string& a : argv) {
    args.push_back(a.data());
    lens.push_back(a.size());
  }
  const uint64_t id = next_id_++;
  if (redisAsyncCommandArgv(ctx_, reply_cb, reinterpret_cast<void*>(static_cast<uintptr_t>(id)),
                            static_cast<int>(args.size()), args.data(), lens.data()) != REDIS_OK) {
    return false;
  }
  pending_.emplace(id, Pending{loop_.now_ms() + options_.command_timeout_ms, std::move(done)});
  arm_timer();
  return true;
}

void RedisClient::fail(const std::string& error) {
  if (state_ == State::idle && ctx_ == nullptr) return;
  fail_error_ = error;
  if (resolve_id_) {
    loop_.resolver().cancel(resolve_id_);
    resolve_id_ = 0;
  }
  if (ctx_) {
    redisAsyncContext* c = ctx_;
    ctx_ = nullptr;
    failing_ = true;
    redisAsyncFree(c);  // answers every pending command with no reply (on_reply)
    failing_ = false;
  }
  // Whatever hiredis did not answer (it had already freed the context).
  std::map<uint64_t, Pending> left;
  left.swap(pending_);
  state_ = State::idle;
  timer_.stop();
  for (auto& [id, p] : left) {
    if (!destroying_) p.done(false, RedisReply{}, error);
  }
  fail_error_.clear();
  abort_error_.clear();
  if (on_down_) on_down_(error);  // last: the owner may destroy us here
}

void RedisClient::abort(const std::string& error) {
  if (state_ == State::idle) return;
  abort_error_ = error;
  timer_.start(0);
}

void RedisClient::arm_timer() {
  if (!abort_error_.empty()) return;  // already due now
  uint64_t due = 0;
  if (state_ == State::resolving || state_ == State::connecting) due = connect_deadline_ms_;
  if (!pending_.empty()) {
    const uint64_t oldest = pending_.begin()->second.deadline_ms;
    due = due ? std::min(due, oldest) : oldest;
  }
  if (due == 0) {
    timer_.stop();
    return;
  }
  const uint64_t now = loop_.now_ms();
  timer_.start(due > now ? due - now : 0);
}

void RedisClient::on_timer() {
  const uint64_t now = loop_.now_ms();
  if (!abort_error_.empty()) {
    std::string why;
    why.swap(abort_error_);
    fail(why);
    return;
  }
  if ((state_ == State::resolving || state_ == State::connecting) && now >= connect_deadline_ms_) {
    fail("connect to " + options_.url.display() + " timed out after " +
         std::to_string(options_.connect_timeout_ms) + " ms");
    return;
  }
  if (!pending_.empty() && now >= pending_.begin()->second.deadline_ms) {
    fail("no answer from " + options_.url.display() + " within " + std::to_string(options_.command_timeout_ms) +
         " ms");
    return;
  }
  arm_timer();
}

}  // namespace fedproxy::net

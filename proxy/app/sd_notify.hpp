// The systemd notification protocol (sd_notify(3)), by hand: one datagram
// of "KEY=VALUE\n" lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a
// path, or an abstract name written with a leading '@'). Without libsystemd:
// the protocol is a stable interface and a dependency for one sendto() is not
// worth it. Without $NOTIFY_SOCKET every call does nothing.
//
// Never blocks the event loop: the socket is non-blocking and a full queue
// (EAGAIN) drops the message — systemd's own sd_notify blocks, which we
// cannot afford on the loop thread, and a lost STATUS= is harmless.
#pragma once

#include <string>
#include <string_view>

namespace fedproxy::app {

class SdNotifier {
 public:
  // Reads $NOTIFY_SOCKET (kept in the environment: fedproxy starts no children).
  SdNotifier();
  ~SdNotifier();
  SdNotifier(const SdNotifier&) = delete;
  SdNotifier& operator=(const SdNotifier&) = delete;

  bool enabled() const { return enabled_; }
  // READY=1 (plus STATUS=): start-up done, or a reload finished.
  void ready(std::string_view status);
  // RELOADING=1 and MONOTONIC_USEC=<CLOCK_MONOTONIC µs>, which systemd >= 253
  // needs to tell this reload from an earlier one.
  void reloading(std::string_view status);
  void stopping(std::string_view status);
  void status(std::string_view status);
  // Sends the lines as one datagram; false when it could not be sent.
  bool send(const std::string& message);

 private:
  bool enabled_ = false;
  int fd_ = -1;
  std::string address_;  // sockaddr_un bytes
  bool warned_ = false;
};

}  // namespace fedproxy::app

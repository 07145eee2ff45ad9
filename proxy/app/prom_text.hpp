// Writing the Prometheus text exposition format 0.0.4: family headers,
// sample lines with escaped label values, and exact decimals. Every number
// fedproxy exposes is an integer it kept as such (counts, bytes, unix
// seconds, nanoseconds); a fraction such as a latency sum in seconds is
// printed from the integer digit by digit, never through a double (a `%g`
// loses precision once a sum grows).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace fedproxy::app::prom {

struct Label {
  std::string_view name;
  std::string_view value;
};

// "# HELP name help\n# TYPE name type\n"
void family(std::string& out, std::string_view name, std::string_view type, std::string_view help);

// name{a="x",b="y"} value\n — label values escaped (\\, \", \n).
void sample(std::string& out, std::string_view name, const Label* labels, size_t n_labels, std::string_view value);
void sample(std::string& out, std::string_view name, std::initializer_list<Label> labels, std::string_view value);
void sample(std::string& out, std::string_view name, std::initializer_list<Label> labels, uint64_t value);
void sample_signed(std::string& out, std::string_view name, std::initializer_list<Label> labels, int64_t value);

// A label value as the format wants it inside quotes.
std::string escape_label(std::string_view v);

// n / 10^scale written exactly, without trailing zeros: (1500, 6) -> "0.0015",
// (2000000000, 9) -> "2", (12345678901, 9) -> "12.345678901".
std::string decimal(uint64_t n, unsigned scale);

}  // namespace fedproxy::app::prom

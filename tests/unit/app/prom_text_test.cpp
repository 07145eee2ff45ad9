#include <doctest/doctest.h>

#include <string>

#include "proxy/app/prom_text.hpp"

namespace prom = fedproxy::app::prom;

TEST_CASE("prom::decimal writes n / 10^scale exactly, without trailing zeros") {
  CHECK(prom::decimal(0, 9) == "0");
  CHECK(prom::decimal(1, 9) == "0.000000001");
  CHECK(prom::decimal(500'000, 9) == "0.0005");
  CHECK(prom::decimal(1'000'000'000, 9) == "1");
  CHECK(prom::decimal(2'500'000'000, 9) == "2.5");
  CHECK(prom::decimal(12'345'678'901, 9) == "12.345678901");
  CHECK(prom::decimal(42, 0) == "42");
  // Far beyond the 6 significant digits %.6g kept, still exact.
  CHECK(prom::decimal(18'446'744'073'709'551'615ull, 9) == "18446744073.709551615");
}

TEST_CASE("prom::sample escapes label values and writes the value as given") {
  std::string out;
  prom::sample(out, "m", {{"a", "x\"y\\z\nw"}, {"b", ""}}, uint64_t{7});
  CHECK(out == "m{a=\"x\\\"y\\\\z\\nw\",b=\"\"} 7\n");
  out.clear();
  prom::sample(out, "m", {}, "0.5");
  CHECK(out == "m 0.5\n");
  out.clear();
  prom::sample_signed(out, "m", {}, -3);
  CHECK(out == "m -3\n");
}

TEST_CASE("prom::family writes HELP then TYPE") {
  std::string out;
  prom::family(out, "fedproxy_x_total", "counter", "Things.");
  CHECK(out == "# HELP fedproxy_x_total Things.\n# TYPE fedproxy_x_total counter\n");
}

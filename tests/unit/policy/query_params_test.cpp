// Query parameters as frameworks read them (SPEC §4): which raw keys name a
// parameter, which values are a row limit in range, %-decoding of values.

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "policy/query_params.hpp"

using namespace fedproxy::policy;

TEST_CASE("param_key_is: the spellings frameworks accept for one name") {
  struct K {
    const char* key;
    const char* name;
    bool names;
  };
  const K cases[] = {
      {"limit", "limit", true},
      {"LIMIT", "limit", true},           // ASP.NET, case-insensitive readers
      {"Limit", "limit", true},
      {"lImIt", "limit", true},
      {"%6Cimit", "limit", true},         // %-decoded
      {"%6cIMIT", "limit", true},
      {"%4C%49%4D%49%54", "limit", true},
      {"limit[]", "limit", true},         // PHP, Rack, qs arrays
      {"limit[0]", "limit", true},
      {"limit[12]", "limit", true},
      {"limit%5B%5D", "limit", true},     // encoded brackets
      {"limit%5b3%5d", "limit", true},
      {"LIMIT[]", "limit", true},
      {"+limit", "limit", true},          // PHP drops leading spaces
      {"%20%20limit", "limit", true},
      {"limits", "limit", false},
      {"xlimit", "limit", false},
      {"limi", "limit", false},
      {"", "limit", false},
      {"limit[a]", "limit", false},       // a nested key: the app reads a map, not a number
      {"limit[", "limit", false},
      {"limit[1", "limit", false},
      {"limit[]]", "limit", false},
      {"limit[][]", "limit", false},
      {"limit ", "limit", false},
      {"lim%zzit", "limit", false},
      {"_method", "_method", true},
      {"_METHOD", "_method", true},
      {".method", "_method", true},       // PHP reads "." and " " in names as "_"
      {"+.method", "_method", true},
      {"%2Emethod", "_method", true},
      {"%20method", "_method", false},    // the leading space goes first: "method"
      {"_method[]", "_method", true},
      {"method", "_method", false},
      {"__method", "_method", false},
      {"page_size", "page_size", true},
      {"page.size", "page_size", true},
      {"page+size", "page_size", true},
      {"Page_Size[1]", "page_size", true},
      {"page-size", "page_size", false},
  };
  for (const K& k : cases) {
    INFO(k.key << " names " << k.name << "?");
    CHECK(param_key_is(k.key, k.name) == k.names);
  }
}

TEST_CASE("for_each_param: both separators, every occurrence, in order") {
  std::vector<std::string> seen;
  for_each_param("limit=1&x=2;LIMIT=3&limit[]=4;;limit&y=limit&limit=", "limit", [&](const QueryParam& p) {
    seen.push_back(std::string(p.piece) + "|" + std::string(p.key) + "|" + std::string(p.value) + "|" +
                   (p.has_value ? "=" : "-"));
  });
  const std::vector<std::string> want = {"limit=1|limit|1|=", "LIMIT=3|LIMIT|3|=", "limit[]=4|limit[]|4|=",
                                         "limit|limit||-", "limit=|limit||="};
  CHECK(seen == want);
}

TEST_CASE("value_in_range: decimal integers from 1 to max only") {
  struct V {
    const char* value;
    bool in_range;
  };
  const V cases[] = {
      {"1", true},      {"100", true},   {"0100", true},  {"%31%30", true}, {"0", false},
      {"101", false},   {"-1", false},   {"+5", false},   {"5+", false},    {"1e2", false},
      {"", false},      {"0x10", false}, {"5.0", false},  {" 5", false},    {"%35%20", false},
      {"99999999999999999999999", false}, {"%zz", false},
  };
  for (const V& v : cases) {
    INFO(v.value);
    CHECK(value_in_range(v.value, 100) == v.in_range);
  }
}

TEST_CASE("decode_component: %-escapes and \"+\", bounded") {
  char buf[8];
  auto dec = [&](const char* raw) {
    size_t n = decode_component(raw, buf, sizeof buf);
    return n > sizeof buf ? std::string("<too long>") : std::string(buf, n);
  };
  CHECK(dec("DELETE") == "DELETE");
  CHECK(dec("DEL%45TE") == "DELETE");
  CHECK(dec("a+b") == "a b");
  CHECK(dec("%2B") == "+");
  CHECK(dec("%zz") == "%zz");
  CHECK(dec("%4") == "%4");
  CHECK(dec("12345678") == "12345678");
  CHECK(dec("123456789") == "<too long>");
}

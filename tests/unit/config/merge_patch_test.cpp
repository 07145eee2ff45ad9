// JSON merge patch: the examples of RFC 7396 Appendix A, one row each.
#include "config/merge_patch.hpp"

#include <doctest/doctest.h>
#include <picojson.h>

#include <string>

namespace {
picojson::value parse(const std::string& text) {
  picojson::value v;
  const std::string error = picojson::parse(v, text);
  REQUIRE_MESSAGE(error.empty(), text);
  return v;
}
}  // namespace

TEST_CASE("merge_patch: RFC 7396 Appendix A") {
  struct Row {
    const char* original;
    const char* patch;
    const char* result;
  };
  const Row rows[] = {
      {R"({"a":"b"})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"b"})", R"({"b":"c"})", R"({"a":"b","b":"c"})"},
      {R"({"a":"b"})", R"({"a":null})", R"({})"},
      {R"({"a":"b","b":"c"})", R"({"a":null})", R"({"b":"c"})"},
      {R"({"a":["b"]})", R"({"a":"c"})", R"({"a":"c"})"},
      {R"({"a":"c"})", R"({"a":["b"]})", R"({"a":["b"]})"},
      {R"({"a":{"b":"c"}})", R"({"a":{"b":"d","c":null}})", R"({"a":{"b":"d"}})"},
      {R"({"a":[{"b":"c"}]})", R"({"a":[1]})", R"({"a":[1]})"},
      {R"(["a","b"])", R"(["c","d"])", R"(["c","d"])"},
      {R"({"a":"b"})", R"(["c"])", R"(["c"])"},
      {R"({"a":"foo"})", R"(null)", R"(null)"},
      {R"({"a":"foo"})", R"("bar")", R"("bar")"},
      {R"({"e":null})", R"({"a":1})", R"({"a":1,"e":null})"},
      {R"([1,2])", R"({"a":"b","c":null})", R"({"a":"b"})"},
      {R"({})", R"({"a":{"bb":{"ccc":null}}})", R"({"a":{"bb":{}}})"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.original);
    CAPTURE(row.patch);
    const picojson::value got = fedproxy::config::merge_patch(parse(row.original), parse(row.patch));
    CHECK(got.serialize() == parse(row.result).serialize());
  }
}

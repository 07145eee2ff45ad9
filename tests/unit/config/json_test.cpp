// config/json.hpp: the one JSON string escaper and the one strict reader.
#include <doctest/doctest.h>

#include <picojson.h>

#include <string>
#include <vector>

#include "config/json.hpp"

using namespace fedproxy::config;

namespace {

std::string round_trip(const std::string& literal) {
  picojson::value v;
  const std::string err = picojson::parse(v, literal);
  REQUIRE_MESSAGE(err.empty(), err);
  REQUIRE(v.is<std::string>());
  return v.get<std::string>();
}

bool valid_utf8(const std::string& s) {
  std::vector<json::Problem> problems;
  picojson::value v;
  return json::read_strict(json::quote(s), &v, &problems) && v.get<std::string>() == s;
}

}  // namespace

TEST_CASE("json::escape: table") {
  const std::string R = "\\ufffd";
  struct Case {
    std::string in;
    std::string keep;    // NonAscii::keep
    std::string ascii;   // NonAscii::escape ("" = same as keep)
  };
  const Case cases[] = {
      {"plain text", "plain text", ""},
      {"", "", ""},
      {"a\"b\\c/", "a\\\"b\\\\c/", ""},
      {"l1\nl2\r\t\b\f", "l1\\nl2\\r\\t\\b\\f", ""},
      {std::string("\0\x01\x1f\x7f", 4), "\\u0000\\u0001\\u001f\\u007f", ""},
      // valid UTF-8 kept; escaped (surrogate pair above U+FFFF) in ASCII mode
      {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
       "caf\\u00e9 \\u20ac \\ud83d\\ude00"},
      // C1 controls and the JavaScript line separators are always escaped
      {"\xc2\x80\xc2\x9f\xc2\xa0", "\\u0080\\u009f\xc2\xa0", "\\u0080\\u009f\\u00a0"},
      {"\xe2\x80\xa8\xe2\x80\xa9", "\\u2028\\u2029", ""},
      // invalid UTF-8: one U+FFFD per maximal ill-formed subpart
      {"bad\xff", "bad" + R, ""},
      {"\xff\xfe", R + R, ""},
      {"\xc0\xaf", R + R, ""},                        // overlong '/': C0 is never valid
      {"\xe0\x80\xaf", R + R + R, ""},                // overlong 3-byte
      {"\xed\xa0\x80", R + R + R, ""},                // surrogate
      {"\xf4\x90\x80\x80", R + R + R + R, ""},        // above U+10FFFF
      {"\xe2\x82", R, ""},                            // truncated: one subpart
      {"\xe2\x82" "A", R + "A", ""},
      {"\xf0\x9f\x98" "x", R + "x", ""},
      {"\x80" "a", R + "a", ""},                      // lone continuation byte
  };
  for (const Case& c : cases) {
    CAPTURE(c.in);
    CHECK(json::escape(c.in) == c.keep);
    const std::string& ascii = c.ascii.empty() ? c.keep : c.ascii;
    CHECK(json::escape(c.in, json::NonAscii::escape) == ascii);
    CHECK(json::quote(c.in) == "\"" + c.keep + "\"");
    // The output is always valid JSON and pure ASCII in ASCII mode.
    round_trip(json::quote(c.in));
    for (char ch : json::escape(c.in, json::NonAscii::escape)) CHECK(static_cast<unsigned char>(ch) < 0x80);
  }
  // Valid text decodes back to itself, whichever mode.
  for (const std::string& s : {std::string("caf\xc3\xa9\n\"x\""), std::string("\xf0\x9f\x98\x80\xc2\x85")}) {
    CHECK(round_trip(json::quote(s)) == s);
    CHECK(round_trip(json::quote(s, json::NonAscii::escape)) == s);
    CHECK(valid_utf8(s));
  }
  std::string appended = "x=";
  json::append_quoted(appended, "a\nb");
  CHECK(appended == "x=\"a\\nb\"");
}

TEST_CASE("json::read_strict: table") {
  struct Case {
    std::string text;
    bool ok;
    std::string where;     // of the first problem
    std::string fragment;  // of its message
  };
  const std::string deep64 = std::string(64, '[') + std::string(64, ']');
  const std::string deep65 = std::string(65, '[') + std::string(65, ']');
  const Case cases[] = {
      {R"({"a": 1, "b": [true, null, "x"]})", true, "", ""},
      {"\xEF\xBB\xBF{\"a\": 1}", true, "", ""},  // byte order mark tolerated
      {"  {\"a\": 1}  \n", true, "", ""},
      {deep64, true, "", ""},
      {deep65, false, "line 1, column 66", "invalid JSON: nested too deeply"},
      {"", false, "line 1, column 1", "invalid JSON: unexpected end of input"},
      {"{", false, "line 1, column 2", "unexpected end of input"},
      {"{\"a\": 1} x", false, "line 1, column 10", "invalid JSON: unexpected content after the end of the JSON value"},
      {"{\"a\": 1}\n{}", false, "line 2, column 1", "after the end"},
      {std::string("{\"a\": 1}\0", 9), false, "line 1, column 9", "after the end"},
      {std::string("{\x01}"), false, "line 1, column 2", "unexpected byte 0x01"},
      {"{\"a\": x}", false, "line 1, column 7", "unexpected character 'x'"},
      {R"({"a": 1, "a": 2})", false, "a", "duplicate key \"a\""},
      {R"({"p": [{"o": 1}, {"o": 2, "o": 3}]})", false, "p[1].o", "duplicate key"},
      {R"({"odd key": 1, "odd key": 1})", false, "[\"odd key\"]", "duplicate key"},
      {R"({"n": 1e999})", false, "n", "number out of range"},
      {"-1e999", false, "(root)", "number out of range"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.text);
    picojson::value v;
    std::vector<json::Problem> problems;
    CHECK(json::read_strict(c.text, &v, &problems) == c.ok);
    CHECK(problems.empty() == c.ok);
    if (!c.ok && !problems.empty()) {
      CHECK(problems[0].where == c.where);
      CHECK(problems[0].message.find(c.fragment) != std::string::npos);
    }
  }
  // Every duplicate key is reported, and reading goes on after each.
  picojson::value v;
  std::vector<json::Problem> problems;
  CHECK_FALSE(json::read_strict(R"({"a": 1, "a": 2, "b": {"c": 1, "c": 2}, "d": 3})", &v, &problems));
  REQUIRE(problems.size() == 2);
  CHECK(problems[0].kind == json::Problem::Kind::duplicate_key);
  CHECK(problems[1].where == "b.c");
  CHECK(v.get("d").get<int64_t>() == 3);
  // The depth bound is an option.
  json::ReadOptions shallow;
  shallow.max_depth = 2;
  problems.clear();
  CHECK(json::read_strict("[[1]]", &v, &problems, shallow));
  CHECK_FALSE(json::read_strict("[[[1]]]", &v, &problems, shallow));
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].kind == json::Problem::Kind::syntax);
}

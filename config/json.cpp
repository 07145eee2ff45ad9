// The one JSON string escaper and the one strict JSON reader (see json.hpp).
#include "config/json.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <utility>

namespace fedproxy::config::json {

namespace {

constexpr char kHex[] = "0123456789abcdef";

void append_u_escape(std::string& out, uint32_t cp) {
  const char esc[6] = {'\\', 'u', kHex[(cp >> 12) & 0xf], kHex[(cp >> 8) & 0xf], kHex[(cp >> 4) & 0xf],
                       kHex[cp & 0xf]};
  out.append(esc, sizeof esc);
}

// Length of the valid UTF-8 sequence at s[i] (1 for ASCII), or 0 when it is
// not valid; then *bad_len is the length of the maximal ill-formed subpart
// (>= 1), which becomes one U+FFFD.
size_t utf8_sequence(std::string_view s, size_t i, size_t* bad_len) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t need;
  unsigned char lo = 0x80, hi = 0xbf;  // range of the second byte
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    need = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    need = 3;
    if (c == 0xe0) lo = 0xa0;  // no overlongs
    if (c == 0xed) hi = 0x9f;  // no surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    need = 4;
    if (c == 0xf0) lo = 0x90;  // no overlongs
    if (c == 0xf4) hi = 0x8f;  // nothing above U+10FFFF
  } else {
    *bad_len = 1;
    return 0;
  }
  for (size_t k = 1; k < need; ++k) {
    if (i + k >= s.size()) {
      *bad_len = k;
      return 0;
    }
    const unsigned char lo_k = k == 1 ? lo : 0x80, hi_k = k == 1 ? hi : 0xbf;
    if (b(i + k) < lo_k || b(i + k) > hi_k) {
      *bad_len = k;
      return 0;
    }
  }
  return need;
}

uint32_t decode(std::string_view s, size_t i, size_t n) {
  auto b = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(s[k])); };
  if (n == 2) return ((b(i) & 0x1f) << 6) | (b(i + 1) & 0x3f);
  if (n == 3) return ((b(i) & 0x0f) << 12) | ((b(i + 1) & 0x3f) << 6) | (b(i + 2) & 0x3f);
  return ((b(i) & 0x07) << 18) | ((b(i + 1) & 0x3f) << 12) | ((b(i + 2) & 0x3f) << 6) | (b(i + 3) & 0x3f);
}

}  // namespace

void append_escaped(std::string& out, std::string_view s, NonAscii mode) {
  out.reserve(out.size() + s.size() + 8);
  size_t i = 0;
  while (i < s.size()) {
    size_t bad = 0;
    const size_t n = utf8_sequence(s, i, &bad);
    if (n == 0) {
      out += "\\ufffd";
      i += bad;
      continue;
    }
    if (n == 1) {
      const auto c = static_cast<unsigned char>(s[i]);
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20 || c == 0x7f) {
            append_u_escape(out, c);
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    const uint32_t cp = decode(s, i, n);
    if (mode == NonAscii::escape || (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029) {
      if (cp >= 0x10000) {
        append_u_escape(out, 0xd800 + ((cp - 0x10000) >> 10));
        append_u_escape(out, 0xdc00 + ((cp - 0x10000) & 0x3ff));
      } else {
        append_u_escape(out, cp);
      }
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
}

std::string escape(std::string_view s, NonAscii mode) {
  std::string out;
  append_escaped(out, s, mode);
  return out;
}

void append_quoted(std::string& out, std::string_view s, NonAscii mode) {
  out += '"';
  append_escaped(out, s, mode);
  out += '"';
}

std::string quote(std::string_view s, NonAscii mode) {
  std::string out;
  append_quoted(out, s, mode);
  return out;
}

std::string key_path(const std::string& parent, std::string_view key) {
  bool plain = !key.empty();
  for (char c : key) {
    plain = plain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                      c == '-' || c == '$');
  }
  std::string out = parent;
  if (plain) {
    if (!out.empty()) out += '.';
    out += key;
  } else {
    out += '[';
    out += quote(key);
    out += ']';
  }
  return out;
}

std::string index_path(const std::string& parent, size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

namespace {

using picojson::array;
using picojson::object;
using picojson::value;

struct Notes {
  std::vector<Problem>* problems;
  size_t found = 0;     // problems added
  std::string failure;  // why the context stopped the parse
};

// picojson's parser driven by a context that reports duplicate keys, bounds
// nesting and refuses numbers that overflow a double.
class StrictContext {
 public:
  StrictContext(value* out, size_t depth, std::string path, Notes* notes)
      : out_(out), depth_(depth), path_(std::move(path)), notes_(notes) {}
  StrictContext(const StrictContext&) = delete;
  StrictContext& operator=(const StrictContext&) = delete;

  bool set_null() {
    *out_ = value();
    return true;
  }
  bool set_bool(bool b) {
    *out_ = value(b);
    return true;
  }
  bool set_int64(int64_t i) {
    *out_ = value(i);
    return true;
  }
  // picojson ignores this return value: the problem is recorded at its path.
  bool set_number(double f) {
    if (!std::isfinite(f)) {
      add(Problem::Kind::number_out_of_range, path_.empty() ? "(root)" : path_, "number out of range");
      *out_ = value();
      return true;
    }
    *out_ = value(f);
    return true;
  }
  template <typename Iter>
  bool parse_string(picojson::input<Iter>& in) {
    *out_ = value(picojson::string_type, false);
    return picojson::_parse_string(out_->get<std::string>(), in);
  }
  bool parse_array_start() { return enter(picojson::array_type); }
  template <typename Iter>
  bool parse_array_item(picojson::input<Iter>& in, size_t index) {
    array& a = out_->get<array>();
    a.push_back(value());
    StrictContext child(&a.back(), depth_, index_path(path_, index), notes_);
    return picojson::_parse(child, in);
  }
  bool parse_array_stop(size_t) {
    ++depth_;
    return true;
  }
  bool parse_object_start() { return enter(picojson::object_type); }
  template <typename Iter>
  bool parse_object_item(picojson::input<Iter>& in, const std::string& key) {
    object& o = out_->get<object>();
    std::string child_path = key_path(path_, key);
    if (o.count(key) != 0) {
      add(Problem::Kind::duplicate_key, child_path, "duplicate key " + quote(key) + " (only one value per key is allowed)");
    }
    value& slot = o[key];
    slot = value();
    StrictContext child(&slot, depth_, std::move(child_path), notes_);
    return picojson::_parse(child, in);
  }
  bool parse_object_stop() {
    ++depth_;
    return true;
  }

 private:
  bool enter(int type) {
    if (depth_ == 0) {
      notes_->failure = "nested too deeply";
      return false;
    }
    --depth_;
    *out_ = value(type, false);
    return true;
  }
  void add(Problem::Kind kind, std::string where, std::string message) {
    notes_->problems->push_back({kind, std::move(where), std::move(message)});
    ++notes_->found;
  }
  value* out_;
  size_t depth_;
  std::string path_;
  Notes* notes_;
};

}  // namespace

bool read_strict(std::string_view text, picojson::value* out, std::vector<Problem>* problems,
                 const ReadOptions& options) {
  Notes notes{problems, 0, {}};
  const size_t start = text.starts_with("\xEF\xBB\xBF") ? 3 : 0;
  const char* const begin = text.data();
  picojson::input<const char*> in(begin + start, begin + text.size());
  StrictContext ctx(out, options.max_depth, "", &notes);
  bool ok = picojson::_parse(ctx, in);
  std::string reason;
  if (ok) {
    in.skip_ws();
    if (in.getc() != -1) {
      in.ungetc();
      ok = false;
      reason = "unexpected content after the end of the JSON value";
    }
  }
  if (ok) return notes.found == 0;

  const size_t offset = static_cast<size_t>(in.cur() - begin);
  size_t line = 1, column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  if (reason.empty()) reason = notes.failure;
  if (reason.empty()) {
    if (offset >= text.size()) {
      reason = "unexpected end of input";
    } else {
      const auto c = static_cast<unsigned char>(text[offset]);
      if (c >= 0x20 && c < 0x7f) {
        reason = std::string("unexpected character '") + static_cast<char>(c) + "'";
      } else {
        char buf[40];
        std::snprintf(buf, sizeof buf, "unexpected byte 0x%02x", c);
        reason = buf;
      }
    }
  }
  problems->push_back({Problem::Kind::syntax, "line " + std::to_string(line) + ", column " + std::to_string(column),
                       "invalid JSON: " + reason});
  return false;
}

}  // namespace fedproxy::config::json

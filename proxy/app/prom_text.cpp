#include "proxy/app/prom_text.hpp"

namespace fedproxy::app::prom {

void family(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(1, ' ').append(help).append(1, '\n');
  out.append("# TYPE ").append(name).append(1, ' ').append(type).append(1, '\n');
}

std::string escape_label(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void sample(std::string& out, std::string_view name, const Label* labels, size_t n_labels, std::string_view value) {
  out.append(name);
  if (n_labels) {
    out.append(1, '{');
    for (size_t i = 0; i < n_labels; ++i) {
      if (i) out.append(1, ',');
      out.append(labels[i].name).append("=\"").append(escape_label(labels[i].value)).append(1, '"');
    }
    out.append(1, '}');
  }
  out.append(1, ' ').append(value).append(1, '\n');
}

void sample(std::string& out, std::string_view name, std::initializer_list<Label> labels, std::string_view value) {
  sample(out, name, labels.begin(), labels.size(), value);
}

void sample(std::string& out, std::string_view name, std::initializer_list<Label> labels, uint64_t value) {
  sample(out, name, labels.begin(), labels.size(), std::to_string(value));
}

void sample_signed(std::string& out, std::string_view name, std::initializer_list<Label> labels, int64_t value) {
  sample(out, name, labels.begin(), labels.size(), std::to_string(value));
}

std::string decimal(uint64_t n, unsigned scale) {
  std::string digits = std::to_string(n);
  if (scale == 0) return digits;
  if (digits.size() <= scale) digits.insert(0, scale + 1 - digits.size(), '0');
  std::string out = digits.substr(0, digits.size() - scale);
  std::string frac = digits.substr(digits.size() - scale);
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  if (!frac.empty()) out.append(1, '.').append(frac);
  return out;
}

}  // namespace fedproxy::app::prom

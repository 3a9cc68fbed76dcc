#include "train/config_yaml.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <sstream>

#include <yaml-cpp/eventhandler.h>

namespace tessera::train::yaml_codec {

// ---------------------------------------------------------------- text helpers

std::string join_path(std::string_view prefix, std::string_view key) {
  return prefix.empty() ? std::string(key) : fmt::format("{}.{}", prefix, key);
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = path.find('.', start);
    parts.emplace_back(path.substr(start, dot - start));
    if (dot == std::string_view::npos) return parts;
    start = dot + 1;
  }
}

std::string_view last_segment(std::string_view path) {
  const std::size_t dot = path.rfind('.');
  return dot == std::string_view::npos ? path : path.substr(dot + 1);
}

// A YAML double-quoted string: safe for any text (paths like "null" or "*x" included).
std::string yaml_quoted(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
        else out += ch;
    }
  }
  return out + "\"";
}

// User input quoted for a message, cut so that the message stays one readable line.
std::string echoed(std::string_view s) {
  constexpr std::size_t kMaxEcho = 60;
  return s.size() > kMaxEcho ? yaml_quoted(s.substr(0, kMaxEcho - 3)) + "..." : yaml_quoted(s);
}

// Shortest text that reads back as the same double, always recognisable as a float.
std::string format_double(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eEn") == std::string::npos) s += ".0";
  return s;
}


std::optional<double> parse_number(std::string_view s) {
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty() || s.front() == '+') return std::nullopt;
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<bool> parse_bool(std::string_view s) {
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

// A node as short flow YAML, for "got ..." in messages.
std::string flow_text(const YAML::Node& n) {
  if (!n.IsDefined() || n.IsNull()) return "null";
  if (n.IsScalar()) {
    const std::string& s = n.Scalar();
    if (s.size() > 60) return echoed(s);
    return n.Tag() != "!" && (parse_number(s) || parse_bool(s)) ? s : yaml_quoted(s);
  }
  std::string out = n.IsSequence() ? "[" : "{";
  bool first = true;
  for (const auto& item : n) {
    if (!first) out += ", ";
    first = false;
    if (n.IsSequence()) out += flow_text(item);
    else out += flow_text(item.first) + ": " + flow_text(item.second);
    if (out.size() > 60) return out.substr(0, 57) + "...";
  }
  return out + (n.IsSequence() ? "]" : "}");
}

std::string describe(const YAML::Node& n) {
  if (n.IsDefined() && n.IsSequence()) return "a list " + flow_text(n);
  if (n.IsDefined() && n.IsMap()) return "a map " + flow_text(n);
  return flow_text(n);
}

// Optimal string alignment distance (edits and adjacent swaps), case-insensitive.
namespace {

std::size_t edit_distance(std::string_view a, std::string_view b) {
  const auto lower = [](char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); };
  std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
  for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i)
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t cost = lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && lower(a[i - 1]) == lower(b[j - 2]) && lower(a[i - 2]) == lower(b[j - 1]))
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

}  // namespace

// The candidate a typo most plausibly meant: within about a third of the length in edits, or
// the only candidate that starts with what was typed.
std::optional<std::string> closest(std::string_view typed, const std::vector<std::string>& candidates) {
  std::optional<std::string> best;
  std::size_t best_distance = std::max<std::size_t>(1, (typed.size() + 1) / 3) + 1;
  for (const std::string& c : candidates) {
    const std::size_t d = edit_distance(typed, c);
    if (d < best_distance) best = c, best_distance = d;
  }
  if (best) return best;
  std::vector<std::string> starts;
  for (const std::string& c : candidates)
    if (typed.size() >= 3 && c.starts_with(typed)) starts.push_back(c);
  if (starts.size() == 1) return starts.front();
  return std::nullopt;
}

std::string did_you_mean(std::string_view typed, const std::vector<std::string>& candidates) {
  const auto c = closest(typed, candidates);
  return c ? fmt::format(" (did you mean {}?)", *c) : "";
}

[[noreturn]] void fail_at(const Source& src, const YAML::Mark& mark, std::string_view key,
                          std::string_view message) {
  std::string where;
  if (!src.override_path.empty()) {
    where = "--set " + (src.override_path.size() > 60 ? echoed(src.override_path) : src.override_path);
    if (key == src.override_path) key = {};
  } else if (!mark.is_null()) {
    where = fmt::format("{}:{}:{}", src.name, mark.line + 1, mark.column + 1);
  } else {
    where = src.name;
  }
  const std::string shown_key = key.size() > 80 ? echoed(key) : std::string(key);
  throw ConfigError(key.empty() ? fmt::format("{}: {}", where, message)
                                : fmt::format("{}: {}: {}", where, shown_key, message));
}

// Records where each YAML document starts; the parser is asked for at most two.
namespace {

class DocumentStarts : public YAML::EventHandler {
 public:
  std::vector<YAML::Mark> starts;
  void OnDocumentStart(const YAML::Mark& mark) override { starts.push_back(mark); }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t, const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

}  // namespace

// The one document of `yaml` (Null when empty). Not YAML::LoadAll: yaml-cpp 0.7 never
// returns from it on some malformed input (a leading ',' yields empty documents forever,
// none advancing past the first byte; found by tests/fuzz/fuzz_config).
YAML::Node load_single_document(const std::string& yaml, const Source& src) {
  try {
    YAML::Node doc = YAML::Load(yaml);
    std::istringstream stream(yaml);
    YAML::Parser parser(stream);
    DocumentStarts handler;
    while (handler.starts.size() < 2 && parser.HandleNextDocument(handler)) {
    }
    if (handler.starts.size() == 2) {
      const YAML::Mark& second = handler.starts[1];
      if (second.pos <= handler.starts[0].pos) {
        const auto at = static_cast<std::size_t>(second.pos);
        fail_at(src, second, "",
                at < yaml.size() ? fmt::format("invalid YAML: unexpected {}", yaml_quoted(yaml.substr(at, 1)))
                                 : std::string("invalid YAML"));
      }
      fail_at(src, second, "", "expected one YAML document, found several (---)");
    }
    return doc;
  } catch (const YAML::Exception& e) {
    fail_at(src, e.mark, "", fmt::format("invalid YAML: {}", e.msg));
  }
}


}  // namespace tessera::train::yaml_codec

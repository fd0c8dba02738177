// `zoobench zoo pin`: record each entry's SHA-256 in the manifest itself. A
// hand-made manifest carries comments and ${VARIABLES} that a YAML emitter
// would lose, so the digests go into the text, line by line, where yaml-cpp's
// marks say each entry's keys are; the result is parsed back and compared
// before it replaces the file.
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <map>

#include "zoobench/error.h"
#include "zoobench/io.h"
#include "zoobench/model.h"

namespace zoobench {
namespace fs = std::filesystem;

namespace {

struct Line {
  std::string text;
  bool cr = false;  // the file's lines end in "\r\n"
};

std::vector<Line> split_lines(const std::string& text) {
  std::vector<Line> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    Line l{text.substr(start, end - start)};
    if (!l.text.empty() && l.text.back() == '\r') l.text.pop_back(), l.cr = true;
    out.push_back(std::move(l));
    start = end + 1;
  }
  return out;
}

// "  sha256: <hex>    # comment" keeps the comment of the line it replaces,
// and the spaces before it.
std::string comment_of(const std::string& line, size_t from) {
  auto blank = [](char c) { return c == ' ' || c == '\t'; };
  size_t hash = line.find('#', from);
  while (hash != std::string::npos && !blank(line[hash - 1])) hash = line.find('#', hash + 1);  // not "a#b"
  if (hash == std::string::npos) return "";
  size_t start = hash;
  while (start > from + 1 && blank(line[start - 1])) --start;
  return line.substr(start);
}

// The new text with every changed digest written in, or ConfigError where an
// entry's layout leaves no line to edit.
std::string edit_text(const fs::path& path, const std::string& text, const std::vector<Pin>& pins) {
  std::vector<Line> lines = split_lines(text);
  const YAML::Node doc = YAML::Load(text);  // Manifest::load parsed it already
  std::map<size_t, std::string> replace, insert_after;  // by line (0-based)
  for (size_t i = 0; i < pins.size(); ++i) {
    if (pins[i].before == pins[i].after) continue;
    const YAML::Node n = doc["models"][i];
    const std::string who = path.string() + ":" + std::to_string(n.Mark().line + 1) + ": models[" + std::to_string(i) +
                            "] ('" + pins[i].name + "')";
    const std::string by_hand = "; add `sha256: " + pins[i].after + "` by hand";
    if (n.Style() == YAML::EmitterStyle::Flow) throw ConfigError(who + ": a one-line {...} entry cannot be edited" + by_hand);
    YAML::Mark sha = YAML::Mark::null_mark(), weights = YAML::Mark::null_mark();
    int weights_last = -1;
    for (const auto& kv : n) {
      const std::string key = kv.first.as<std::string>();
      if (key == "sha256") {
        sha = kv.first.Mark();
        if (!kv.second.IsNull() && kv.second.Mark().line != sha.line)
          throw ConfigError(who + ": its sha256 value is not on the key's line" + by_hand);
      } else if (key == "weights") {
        weights = kv.first.Mark();
        weights_last = std::max(weights.line, kv.second.Mark().line);
      }
    }
    if (sha.line >= 0) {
      const std::string& l = lines.at(static_cast<size_t>(sha.line)).text;
      replace[static_cast<size_t>(sha.line)] =
          l.substr(0, static_cast<size_t>(sha.column)) + "sha256: " + pins[i].after + comment_of(l, l.find(':', static_cast<size_t>(sha.column)));
    } else {
      insert_after[static_cast<size_t>(weights_last)] = std::string(static_cast<size_t>(weights.column), ' ') + "sha256: " + pins[i].after;
    }
  }
  // Each line keeps its own end; an inserted line, and a last line that had
  // none, take the file's.
  bool crlf = false;
  for (const auto& l : lines) crlf |= l.cr;
  const std::string file_eol = crlf ? "\r\n" : "\n";
  const bool unended = !text.empty() && text.back() != '\n';
  std::string out, eol;
  for (size_t i = 0; i < lines.size(); ++i) {
    eol = lines[i].cr ? "\r\n" : i + 1 == lines.size() && unended ? file_eol : "\n";
    auto r = replace.find(i);
    out += (r == replace.end() ? lines[i].text : r->second) + eol;
    if (auto a = insert_after.find(i); a != insert_after.end()) out += a->second + (eol = file_eol);
  }
  if (unended) out.erase(out.size() - eol.size());
  return out;
}

}  // namespace

std::vector<Pin> pin_manifest(const fs::path& path, const LoadRules& rules, bool write) {
  const Manifest m = Manifest::load(path);
  LoadRules r = rules;
  r.require_pinned = false;
  std::vector<Pin> pins;
  for (const auto& e : m.entries) {
    const fs::path file = weights_file(m, e, r);
    pins.push_back({e.name, file, e.sha256, sha256_file(file)});
  }
  bool changed = false;
  for (const auto& p : pins) changed |= p.before != p.after;
  if (!write || !changed) return pins;

  const std::string text = read_file(path);
  const std::string edited = edit_text(path, text, pins);
  // Through a symbolic link to the file it names; with the file's permissions.
  AtomicPath out(fs::is_symlink(path) ? fs::canonical(path) : path);
  {
    std::ofstream f(out.tmp(), std::ios::binary);
    f << edited;
    if (!f.flush()) throw IoError("cannot write '" + out.tmp().string() + "'");
  }
  std::error_code ec;
  fs::permissions(out.tmp(), fs::status(out.final_path()).permissions(), ec);
  // The edit must change the digests and nothing else (a layout it did not
  // foresee, such as a multi-line weights value, fails here).
  const std::string refused = path.string() + ": pinning would change more than the digests (an unusual layout?); "
                              "the manifest is left as it was";
  Manifest back;
  try {
    back = Manifest::load(out.tmp());
  } catch (const Error&) {
    throw Error(refused);
  }
  bool same = back.entries.size() == m.entries.size();
  for (size_t i = 0; same && i < pins.size(); ++i)
    same = back.entries[i].name == m.entries[i].name && back.entries[i].weights == m.entries[i].weights &&
           back.entries[i].sha256 == pins[i].after;
  if (!same) throw Error(refused);
  out.commit();
  return pins;
}

}  // namespace zoobench

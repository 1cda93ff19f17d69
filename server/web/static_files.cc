#include "server/web/static_files.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace amqpgw::web {
namespace {

bool SafePath(absl::string_view path) {
  if (path.empty() || path[0] != '/') return false;
  if (absl::StrContains(path, "..") || absl::StrContains(path, "//") ||
      absl::StrContains(path, '\\') ||
      path.find('\0') != absl::string_view::npos) {
    return false;
  }
  for (char c : path) {
    bool ok = absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '/' ||
              c == '.' || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::string ETagOf(absl::string_view body) {
  return absl::StrCat("\"", absl::Hex(absl::HashOf(body)), "-", body.size(),
                      "\"");
}

StaticFile MakeFile(absl::string_view path, std::string body) {
  StaticFile f;
  f.content_type = ContentTypeFor(path);
  f.etag = ETagOf(body);
  f.body = std::move(body);
  return f;
}

// Embedded files with their types and ETags, built once.
const absl::flat_hash_map<std::string, StaticFile>& EmbeddedTable() {
  static const auto* table = [] {
    auto* t = new absl::flat_hash_map<std::string, StaticFile>();
    for (const EmbeddedFile& e : EmbeddedWebFiles()) {
      (*t)[e.path] = MakeFile(
          e.path, std::string(reinterpret_cast<const char*>(e.data), e.size));
    }
    return t;
  }();
  return *table;
}

}  // namespace

std::string ContentTypeFor(absl::string_view path) {
  struct Type {
    const char* ext;
    const char* type;
  };
  static constexpr Type kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".txt", "text/plain; charset=utf-8"},
      {".webmanifest", "application/manifest+json"},
  };
  std::string lower = absl::AsciiStrToLower(path);
  for (const Type& t : kTypes) {
    if (absl::EndsWith(lower, t.ext)) return t.type;
  }
  return "application/octet-stream";
}

StaticFiles StaticFiles::Embedded() { return StaticFiles(); }

StaticFiles StaticFiles::FromDirectory(std::string root) {
  StaticFiles files;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  files.root_ = root.empty() ? "." : root;
  return files;
}

std::optional<StaticFile> StaticFiles::Find(absl::string_view path) const {
  std::string p(path == "/" ? "/index.html" : path);
  if (!SafePath(p)) return std::nullopt;
  if (root_.empty()) {
    const auto& table = EmbeddedTable();
    auto it = table.find(p);
    if (it == table.end()) return std::nullopt;
    return it->second;
  }
  std::string file = root_ + p;
  struct stat st;
  if (stat(file.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return std::nullopt;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream body;
  body << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return MakeFile(p, body.str());
}

}  // namespace amqpgw::web

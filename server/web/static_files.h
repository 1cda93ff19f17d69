// The browser view's files (web/dist): embedded into the binary at build
// time, or read from a folder on every request (--web_root, for working on
// the page without rebuilding the daemon).
//
// Threads: immutable after construction; Find may be called from any thread.
#ifndef AMQPGW_SERVER_WEB_STATIC_FILES_H_
#define AMQPGW_SERVER_WEB_STATIC_FILES_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace amqpgw::web {

struct StaticFile {
  std::string content_type;
  std::string body;
  // Strong validator of `body` ("\"<hash>\"").
  std::string etag;
};

// A file compiled into the binary (see embed_files.cmake).
struct EmbeddedFile {
  const char* path;  // "/index.html"
  const unsigned char* data;
  size_t size;
};
// Generated at build time from web/dist; empty when the view was not built.
const std::vector<EmbeddedFile>& EmbeddedWebFiles();

class StaticFiles {
 public:
  // The files embedded at build time.
  static StaticFiles Embedded();
  // Files under `root`, read on each request.
  static StaticFiles FromDirectory(std::string root);

  // The file for a request path; "/" is "/index.html". nullopt when there is
  // none, or the path tries to leave the root ("..", "\", NUL, "//").
  std::optional<StaticFile> Find(absl::string_view path) const;

  bool embedded() const { return root_.empty(); }

 private:
  StaticFiles() = default;
  std::string root_;  // empty: embedded
};

// "text/html; charset=utf-8" etc., from the file name's extension.
std::string ContentTypeFor(absl::string_view path);

}  // namespace amqpgw::web

#endif  // AMQPGW_SERVER_WEB_STATIC_FILES_H_

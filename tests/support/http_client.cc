#include "tests/support/http_client.h"

#include <httplib.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace amqpgw::testing {

absl::StatusOr<HttpResponse> HttpGet(int port, const std::string& path) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(std::chrono::seconds(5));
  client.set_read_timeout(std::chrono::seconds(10));
  httplib::Result r = client.Get(path.c_str());
  if (!r) {
    return absl::UnavailableError(
        absl::StrCat("GET ", path, ": ", httplib::to_string(r.error())));
  }
  HttpResponse out;
  out.status = r->status;
  out.content_type = r->get_header_value("Content-Type");
  out.body = r->body;
  return out;
}

double MetricValue(const std::string& page, const std::string& sample) {
  for (absl::string_view line : absl::StrSplit(page, '\n')) {
    if (line.size() > sample.size() + 1 &&
        line.substr(0, sample.size()) == sample && line[sample.size()] == ' ') {
      return std::strtod(std::string(line.substr(sample.size() + 1)).c_str(),
                         nullptr);
    }
  }
  return -1;
}

}  // namespace amqpgw::testing

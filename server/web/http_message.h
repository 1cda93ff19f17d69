// A complete HTTP request as handlers see it, and a whole response. Plain
// data: the HTTP server fills requests, handlers fill responses.
#ifndef AMQPGW_SERVER_WEB_HTTP_MESSAGE_H_
#define AMQPGW_SERVER_WEB_HTTP_MESSAGE_H_

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace amqpgw::web {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  // The request target as sent; its percent-decoded path; its query
  // parameters, decoded.
  std::string target;
  std::string path;
  std::multimap<std::string, std::string> params;
  // Header names in lower case.
  std::multimap<std::string, std::string> headers;
  std::string body;
  int minor_version = 1;  // HTTP/1.x
  std::string remote_addr;
  int remote_port = 0;
  bool tls = false;

  // The first value of `lower_case_name`, or "".
  std::string Header(absl::string_view lower_case_name) const {
    auto it = headers.find(std::string(lower_case_name));
    return it == headers.end() ? std::string() : it->second;
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

}  // namespace amqpgw::web

#endif  // AMQPGW_SERVER_WEB_HTTP_MESSAGE_H_

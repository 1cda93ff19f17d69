// Plain HTTP for tests (scraping /metrics): GET on loopback with cpp-httplib.
#ifndef AMQPGW_TESTS_SUPPORT_HTTP_CLIENT_H_
#define AMQPGW_TESTS_SUPPORT_HTTP_CLIENT_H_

#include <string>

#include "absl/status/statusor.h"

namespace amqpgw::testing {

struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

// GET http://127.0.0.1:<port><path>.
absl::StatusOr<HttpResponse> HttpGet(int port, const std::string& path);

// The value of one sample of a Prometheus text page, e.g.
// MetricValue(page, "amqpgw_messages_published_total") or
// MetricValue(page, "amqpgw_session_state{state=\"READY\"}"). -1 when the
// sample is absent.
double MetricValue(const std::string& page, const std::string& sample);

}  // namespace amqpgw::testing

#endif  // AMQPGW_TESTS_SUPPORT_HTTP_CLIENT_H_

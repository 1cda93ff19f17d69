#include "tests/support/stream_reader.h"

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace amqpgw::testing {

Traffic::Traffic(std::unique_ptr<v1::Gateway::Stub> stub, std::string queue,
                 int batch, int first)
    : stub_(std::move(stub)), queue_(std::move(queue)), batch_(batch) {
  thread_ = std::thread([this, first] {
    int next = first;
    while (!stop_.load()) {
      if (batch_ <= 1) {
        v1::PublishRequest req;
        req.set_routing_key(queue_);
        int n = next++;
        req.set_body(absl::StrCat(n));
        v1::PublishResponse resp;
        if (stub_->Publish(Ctx(absl::Seconds(30)).get(), req, &resp).ok()) {
          std::lock_guard<std::mutex> lock(mu_);
          confirmed_.insert(n);
        } else {
          ++errors_;
        }
        continue;
      }
      v1::PublishBatchRequest req;
      int base = next;
      next += batch_;
      for (int i = 0; i < batch_; ++i) {
        auto* m = req.add_messages();
        m->set_routing_key(queue_);
        m->set_body(absl::StrCat(base + i));
      }
      v1::PublishBatchResponse resp;
      if (!stub_->PublishBatch(Ctx(absl::Seconds(30)).get(), req, &resp).ok()) {
        ++errors_;
        continue;
      }
      std::lock_guard<std::mutex> lock(mu_);
      for (int i = 0; i < resp.results_size(); ++i) {
        if (resp.results(i).code() == 0) {
          confirmed_.insert(base + i);
        } else {
          ++errors_;
        }
      }
    }
  });
}

Traffic::~Traffic() { Stop(); }

void Traffic::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

std::set<int> Traffic::confirmed() {
  std::lock_guard<std::mutex> lock(mu_);
  return confirmed_;
}

std::map<int, int> CountBodies(const std::vector<v1::Delivery>& deliveries) {
  std::map<int, int> counts;
  for (const auto& d : deliveries) {
    int n;
    if (absl::SimpleAtoi(d.body(), &n)) ++counts[n];
  }
  return counts;
}

}  // namespace amqpgw::testing

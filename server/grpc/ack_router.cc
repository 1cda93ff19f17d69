#include "server/grpc/ack_router.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <chrono>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "server/base/hex.h"
#include "server/base/quote.h"

namespace amqpgw::grpc_api {
namespace {

constexpr char kSeparator = '~';
// MAC bytes kept (hex: twice as many characters).
constexpr size_t kMacBytes = 16;
// Channels kept before all are dropped.
constexpr size_t kMaxStubs = 64;
// A forwarded Ack whose caller gave no deadline.
constexpr auto kDefaultForwardTimeout = std::chrono::seconds(30);

// The id's parts after its last '/': {random, address, mac}, or fewer when
// it carries no route.
std::vector<absl::string_view> Tail(absl::string_view id) {
  size_t slash = id.rfind('/');
  absl::string_view tail =
      slash == absl::string_view::npos ? id : id.substr(slash + 1);
  return absl::StrSplit(tail, kSeparator);
}

}  // namespace

AckRouter::AckRouter(Options options) : options_(std::move(options)) {}

std::string AckRouter::Mac(absl::string_view id,
                           absl::string_view address) const {
  std::string data = absl::StrCat(id, std::string(1, kSeparator), address);
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), options_.secret.data(),
       static_cast<int>(options_.secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
       &len);
  return HexEncode(absl::string_view(reinterpret_cast<const char*>(out),
                                     std::min<size_t>(len, kMacBytes)));
}

std::string AckRouter::Seal(const std::string& id) const {
  return absl::StrCat(id, std::string(1, kSeparator),
                      options_.advertise_address, std::string(1, kSeparator),
                      Mac(id, options_.advertise_address));
}

absl::StatusOr<AckRouter::Route> AckRouter::Resolve(
    const std::string& id, absl::string_view forwarded_by) const {
  std::vector<absl::string_view> tail = Tail(id);
  if (tail.size() == 1) return Route{};  // no route: the session decides
  if (tail.size() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("subscription_id: ", QuoteInput(id),
                     " is not one this gateway made (pass the id of the "
                     "stream's `subscribed` event unchanged)"));
  }
  absl::string_view address = tail[1];
  absl::string_view mac = tail[2];
  size_t sealed_length = id.size() - address.size() - mac.size() - 2;
  std::string expected = Mac(id.substr(0, sealed_length), address);
  if (mac.size() != expected.size() ||
      CRYPTO_memcmp(mac.data(), expected.data(), mac.size()) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "subscription_id: ", QuoteInput(id),
        " carries a route that no gateway sharing this one's "
        "--peer_secret_file made (pass the id of the stream's `subscribed` "
        "event unchanged)"));
  }
  if (address == options_.advertise_address) return Route{};
  if (!forwarded_by.empty()) {
    return absl::UnavailableError(absl::StrCat(
        "an Ack forwarded by gateway instance ", QuoteInput(forwarded_by),
        " for the instance at ", address, " reached '", options_.instance_id,
        "' (advertised as ", options_.advertise_address,
        "): is --advertise_address the address of the instance that holds "
        "the stream?"));
  }
  return Route{std::string(address)};
}

std::shared_ptr<v1::Gateway::Stub> AckRouter::StubFor(
    const std::string& address) {
  amqpgw::MutexLock lock(&mu_);
  auto it = stubs_.find(address);
  if (it != stubs_.end()) return it->second;
  if (stubs_.size() >= kMaxStubs) stubs_.clear();
  auto stub = std::shared_ptr<v1::Gateway::Stub>(v1::Gateway::NewStub(
      ::grpc::CreateChannel(address, options_.credentials)));
  stubs_[address] = stub;
  return stub;
}

void AckRouter::Forward(
    const std::string& address, const ::grpc::CallbackServerContext& ctx,
    const v1::AckRequest& request,
    absl::AnyInvocable<void(const ::grpc::Status&, const v1::AckResponse&) &&>
        done) {
  struct Call {
    ::grpc::ClientContext context;
    v1::AckRequest request;
    v1::AckResponse response;
    std::shared_ptr<v1::Gateway::Stub> stub;
    std::string address;
    absl::AnyInvocable<void(const ::grpc::Status&, const v1::AckResponse&) &&>
        done;
  };
  auto* call = new Call;
  call->request = request;
  call->stub = StubFor(address);
  call->address = address;
  call->done = std::move(done);
  auto deadline = ctx.deadline();
  auto latest = std::chrono::system_clock::now() + kDefaultForwardTimeout;
  call->context.set_deadline(std::min(deadline, latest));
  const auto& md = ctx.client_metadata();
  if (auto it = md.find("authorization"); it != md.end()) {
    call->context.AddMetadata(
        "authorization", std::string(it->second.data(), it->second.size()));
  }
  call->context.AddMetadata(kForwardedBy, options_.instance_id);
  call->stub->async()->Ack(
      &call->context, &call->request, &call->response,
      [call](::grpc::Status status) {
        // The holder's own UNAVAILABLE (its broker connection is down) and
        // one about reaching it both name it.
        if (status.error_code() == ::grpc::StatusCode::UNAVAILABLE ||
            status.error_code() == ::grpc::StatusCode::DEADLINE_EXCEEDED) {
          status = ::grpc::Status(
              status.error_code(),
              absl::StrCat("the gateway instance at ", call->address,
                           " holds this subscription; the forwarded Ack: ",
                           status.error_message()));
        }
        std::move(call->done)(status, call->response);
        delete call;
      });
}

}  // namespace amqpgw::grpc_api

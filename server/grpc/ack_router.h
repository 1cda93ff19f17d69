// Acks that reach the instance holding the stream.
//
// Behind a load balancer an Ack lands on any gateway instance, but only the
// instance holding the StreamMessages stream can apply it (the AMQP
// channel is there). With --advertise_address and --peer_secret_file, an
// instance seals every subscription id it makes with where it can be
// reached and a MAC over both, made with the secret all instances share:
//
//   <instance_id>/<random>~<advertise_address>~<mac>
//
// Another instance that gets an Ack for that id checks the MAC (so a
// caller cannot make a gateway call an address of the caller's choosing)
// and forwards the Ack over gRPC to the holder, with the caller's
// `authorization` header and deadline; the caller gets the holder's
// answer. A forwarded Ack carries `amqpgw-forwarded-by`, and one that lands
// on a second instance that does not hold it fails UNAVAILABLE instead of
// going round.
//
// Thread safety: all methods are thread-safe; Forward never blocks (gRPC's
// callback client API answers on one of gRPC's threads).
#ifndef AMQPGW_SERVER_GRPC_ACK_ROUTER_H_
#define AMQPGW_SERVER_GRPC_ACK_ROUTER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "amqpgw/v1/gateway.grpc.pb.h"
#include "server/base/sync.h"

namespace amqpgw::grpc_api {

class AckRouter {
 public:
  // The metadata key a forwarded Ack carries (the forwarder's instance id).
  static constexpr char kForwardedBy[] = "amqpgw-forwarded-by";

  struct Options {
    // This instance's name (subscription ids start with it).
    std::string instance_id;
    // host:port at which the other instances reach this one's gRPC port.
    std::string advertise_address;
    // Shared by every instance; the MAC key. Must not be empty.
    std::string secret;
    // How this instance reaches the others (TLS as its own port's).
    std::shared_ptr<::grpc::ChannelCredentials> credentials;
  };

  // Where an Ack goes.
  struct Route {
    // Empty: this instance holds it (or the id carries no route: the
    // session answers as for any id).
    std::string holder_address;
  };

  explicit AckRouter(Options options);

  // `id` with this instance's route and MAC appended
  // (core::SessionOptions::seal_subscription_id).
  std::string Seal(const std::string& id) const;

  // Where the Ack for `id` goes. `forwarded_by`: the call's kForwardedBy
  // value, empty when the caller is not a gateway. INVALID_ARGUMENT when
  // the route was not made with this secret; UNAVAILABLE for a forwarded
  // Ack this instance does not hold (a loop: --advertise_address names
  // another instance).
  absl::StatusOr<Route> Resolve(const std::string& id,
                                absl::string_view forwarded_by) const;

  // Sends `request` to the instance at `address` as the caller of `ctx`
  // did (its authorization and deadline); `done` gets the holder's answer,
  // an UNAVAILABLE naming the holder when it did not answer. `ctx` must
  // stay valid until `done` runs (the handler's reactor is not finished
  // before).
  void Forward(
      const std::string& address, const ::grpc::CallbackServerContext& ctx,
      const v1::AckRequest& request,
      absl::AnyInvocable<void(const ::grpc::Status&, const v1::AckResponse&) &&>
          done);

  const std::string& advertise_address() const {
    return options_.advertise_address;
  }

 private:
  std::string Mac(absl::string_view id, absl::string_view address) const;
  std::shared_ptr<v1::Gateway::Stub> StubFor(const std::string& address)
      ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  amqpgw::Mutex mu_;
  // One channel per holder; dropped all at once past a bound (peers come
  // and go behind a balancer).
  absl::flat_hash_map<std::string, std::shared_ptr<v1::Gateway::Stub>> stubs_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace amqpgw::grpc_api

#endif  // AMQPGW_SERVER_GRPC_ACK_ROUTER_H_

// One grpc-web or Connect request bridged to a gRPC call on the server's
// in-process channel, through the generic stub: the request messages go out
// as they came (serialized protobuf), the replies come back as raw bytes.
// Works for any method, unary or server streaming, without knowing its
// types.
//
// Ownership: shared between the HTTP connection thread that writes the
// response (it holds a shared_ptr for as long as it serves the request) and
// the call itself, which holds a reference to itself from Start until gRPC
// calls OnDone.
//
// Threads: gRPC reactions (OnReadDone, OnWriteDone, OnDone, ...) run on
// gRPC's threads and never block; Next, Cancel and the accessors may be
// called from any thread. Shared state is under mu_.
//
// Flow control: at most kMaxBufferedMessages (or about kMaxBufferedBytes)
// replies wait for the HTTP side; beyond that the call stops reading, so a
// slow browser slows its own stream down to the server (for StreamMessages:
// the broker's prefetch window) instead of filling memory.
#ifndef AMQPGW_SERVER_WEB_GRPC_WEB_CALL_H_
#define AMQPGW_SERVER_WEB_GRPC_WEB_CALL_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "server/base/sync.h"

namespace amqpgw::web {

class GrpcWebCall
    : public ::grpc::ClientBidiReactor<::grpc::ByteBuffer, ::grpc::ByteBuffer> {
 public:
  static constexpr size_t kMaxBufferedMessages = 8;
  static constexpr size_t kMaxBufferedBytes = 1 << 20;

  using Metadata = std::vector<std::pair<std::string, std::string>>;

  // Starts `method` ("/package.Service/Method") with `requests` (serialized
  // messages), `metadata` as request metadata and `deadline`
  // (InfiniteFuture: none).
  static std::shared_ptr<GrpcWebCall> Start(::grpc::GenericStub* stub,
                                            std::string method,
                                            std::vector<std::string> requests,
                                            const Metadata& metadata,
                                            absl::Time deadline);

  // Waits up to `timeout` for a reply or the end of the call, then moves the
  // replies received so far into `messages`. Returns true once the call has
  // ended and every reply was taken: status() and trailers() are then set.
  bool Next(absl::Duration timeout, std::vector<std::string>* messages);
  // The HTTP side gives up (the browser went away, or the server stops):
  // cancels the call. Safe at any time, more than once.
  void Cancel();

  // Valid once Next returned true.
  ::grpc::Status status() const;
  // The server's initial and trailing metadata, in that order.
  Metadata trailers() const;
  // Each alone.
  Metadata initial_metadata() const;
  Metadata trailing_metadata() const;

  // ::grpc::ClientBidiReactor.
  void OnReadInitialMetadataDone(bool ok) override;
  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const ::grpc::Status& status) override;

 private:
  GrpcWebCall(std::string method, std::vector<std::string> requests);

  // Starts the next read when the buffer has room and the HTTP side still
  // wants replies; releases the hold once no more reads will start.
  // Returns what to do after unlocking.
  struct Actions {
    bool start_read = false;
    bool remove_hold = false;
  };
  Actions NextActionsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Run(Actions actions);
  void WriteNext();

  const std::string method_;
  ::grpc::ClientContext context_;
  // Request messages; written one after another from reactions only.
  std::vector<::grpc::ByteBuffer> requests_;
  size_t next_request_ = 0;
  // The reply being read: owned by gRPC between StartRead and OnReadDone.
  ::grpc::ByteBuffer read_buffer_;
  // Keeps the call alive until OnDone.
  std::shared_ptr<GrpcWebCall> self_;

  mutable amqpgw::Mutex mu_;
  amqpgw::CondVar changed_;
  std::deque<std::string> replies_ ABSL_GUARDED_BY(mu_);
  size_t buffered_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_ended_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  bool holding_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  ::grpc::Status status_ ABSL_GUARDED_BY(mu_);
  Metadata initial_metadata_ ABSL_GUARDED_BY(mu_);
  Metadata trailing_metadata_ ABSL_GUARDED_BY(mu_);
};

}  // namespace amqpgw::web

#endif  // AMQPGW_SERVER_WEB_GRPC_WEB_CALL_H_

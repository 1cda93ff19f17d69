#include "server/web/grpc_web_call.h"

#include "absl/strings/match.h"
#include "server/base/sync.h"

namespace amqpgw::web {
namespace {

// Metadata that belongs to the transport, not the application.
bool IsTransportMetadata(absl::string_view key) {
  return key.empty() || key[0] == ':' || absl::StartsWith(key, "grpc-") ||
         key == "content-type" || key == "te" || key == "user-agent";
}

GrpcWebCall::Metadata CopyMetadata(
    const std::multimap<::grpc::string_ref, ::grpc::string_ref>& in) {
  GrpcWebCall::Metadata out;
  for (const auto& [key, value] : in) {
    absl::string_view k(key.data(), key.size());
    if (IsTransportMetadata(k)) continue;
    out.emplace_back(std::string(k), std::string(value.data(), value.size()));
  }
  return out;
}

}  // namespace

GrpcWebCall::GrpcWebCall(std::string method, std::vector<std::string> requests)
    : method_(std::move(method)) {
  requests_.reserve(requests.size());
  for (std::string& r : requests) {
    ::grpc::Slice slice(std::move(r));
    requests_.emplace_back(&slice, 1);
  }
}

std::shared_ptr<GrpcWebCall> GrpcWebCall::Start(
    ::grpc::GenericStub* stub, std::string method,
    std::vector<std::string> requests, const Metadata& metadata,
    absl::Time deadline) {
  std::shared_ptr<GrpcWebCall> call(
      new GrpcWebCall(std::move(method), std::move(requests)));
  for (const auto& [key, value] : metadata) {
    call->context_.AddMetadata(key, value);
  }
  if (deadline != absl::InfiniteFuture()) {
    call->context_.set_deadline(absl::ToChronoTime(deadline));
  }
  call->self_ = call;
  stub->PrepareBidiStreamingCall(&call->context_, call->method_,
                                 ::grpc::StubOptions(), call.get());
  {
    amqpgw::MutexLock lock(&call->mu_);
    call->reading_ = true;
    call->holding_ = true;
  }
  // The hold lets the HTTP side start reads from its own thread (after a
  // pause) without racing OnDone; it is removed once no read will start.
  call->AddHold();
  call->StartRead(&call->read_buffer_);
  call->WriteNext();
  call->StartCall();
  return call;
}

void GrpcWebCall::WriteNext() {
  if (requests_.empty()) {
    StartWritesDone();
    return;
  }
  if (next_request_ >= requests_.size()) return;
  size_t i = next_request_++;
  if (i + 1 == requests_.size()) {
    StartWriteLast(&requests_[i], ::grpc::WriteOptions());
  } else {
    StartWrite(&requests_[i]);
  }
}

void GrpcWebCall::OnWriteDone(bool ok) {
  // Not ok: the call is over; OnDone follows.
  if (ok) WriteNext();
}

void GrpcWebCall::OnReadInitialMetadataDone(bool ok) {
  if (!ok) return;
  Metadata md = CopyMetadata(context_.GetServerInitialMetadata());
  amqpgw::MutexLock lock(&mu_);
  initial_metadata_ = std::move(md);
}

void GrpcWebCall::OnReadDone(bool ok) {
  Actions actions;
  {
    amqpgw::MutexLock lock(&mu_);
    reading_ = false;
    if (ok) {
      std::vector<::grpc::Slice> slices;
      std::string bytes;
      if (read_buffer_.Dump(&slices).ok()) {
        bytes.reserve(read_buffer_.Length());
        for (const ::grpc::Slice& s : slices) {
          bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
        }
      }
      read_buffer_.Clear();
      buffered_bytes_ += bytes.size();
      replies_.push_back(std::move(bytes));
    } else {
      reads_ended_ = true;
    }
    actions = NextActionsLocked();
    changed_.SignalAll();
  }
  Run(actions);
}

void GrpcWebCall::OnDone(const ::grpc::Status& status) {
  Metadata trailing = CopyMetadata(context_.GetServerTrailingMetadata());
  {
    amqpgw::MutexLock lock(&mu_);
    done_ = true;
    status_ = status;
    trailing_metadata_ = std::move(trailing);
    changed_.SignalAll();
  }
  // The last reaction: drop the self-reference (this may delete the call).
  std::shared_ptr<GrpcWebCall> self = std::move(self_);
}

GrpcWebCall::Actions GrpcWebCall::NextActionsLocked() {
  Actions a;
  if (holding_ && !reading_ && !reads_ended_ && !cancelled_ &&
      replies_.size() < kMaxBufferedMessages &&
      buffered_bytes_ < kMaxBufferedBytes) {
    reading_ = true;
    a.start_read = true;
  }
  if (holding_ && !reading_ && (reads_ended_ || cancelled_)) {
    holding_ = false;
    a.remove_hold = true;
  }
  return a;
}

void GrpcWebCall::Run(Actions actions) {
  if (actions.start_read) StartRead(&read_buffer_);
  // Last: once the hold is gone, OnDone may run (and free the call unless
  // the caller holds a reference).
  if (actions.remove_hold) RemoveHold();
}

bool GrpcWebCall::Next(absl::Duration timeout,
                       std::vector<std::string>* messages) {
  Actions actions;
  bool ended = false;
  {
    amqpgw::MutexLock lock(&mu_);
    absl::Time deadline = absl::Now() + timeout;
    while (replies_.empty() && !done_) {
      if (changed_.WaitWithDeadline(&mu_, deadline)) break;
    }
    for (std::string& r : replies_) messages->push_back(std::move(r));
    replies_.clear();
    buffered_bytes_ = 0;
    actions = NextActionsLocked();
    ended = done_;
  }
  Run(actions);
  return ended;
}

void GrpcWebCall::Cancel() {
  Actions actions;
  {
    amqpgw::MutexLock lock(&mu_);
    if (cancelled_ || done_) return;
    cancelled_ = true;
    actions = NextActionsLocked();
  }
  context_.TryCancel();
  Run(actions);
}

::grpc::Status GrpcWebCall::status() const {
  amqpgw::MutexLock lock(&mu_);
  return status_;
}

GrpcWebCall::Metadata GrpcWebCall::trailers() const {
  amqpgw::MutexLock lock(&mu_);
  Metadata out = initial_metadata_;
  out.insert(out.end(), trailing_metadata_.begin(), trailing_metadata_.end());
  return out;
}

GrpcWebCall::Metadata GrpcWebCall::initial_metadata() const {
  amqpgw::MutexLock lock(&mu_);
  return initial_metadata_;
}

GrpcWebCall::Metadata GrpcWebCall::trailing_metadata() const {
  amqpgw::MutexLock lock(&mu_);
  return trailing_metadata_;
}

}  // namespace amqpgw::web

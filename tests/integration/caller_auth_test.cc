// --auth_tokens over real gRPC: UNAUTHENTICATED without a valid token,
// PERMISSION_DENIED when the role does not allow the RPC, health and
// reflection open, and the same checks on the in-process channel that the
// grpc-web bridge uses.
#include <gmock/gmock.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/support/broker_node.h"
#include "tests/support/gateway_fixture.h"
#include "tests/support/wait.h"

namespace amqpgw::testing {
namespace {

using ::grpc::StatusCode;
using ::testing::HasSubstr;

constexpr char kPublishToken[] = "pub-7a1c0e52b9d84f3e";
constexpr char kConsumeToken[] = "con-0b5f9e3d2c1a4876";
constexpr char kAdminToken[] = "adm-5d2e8f1a3b7c9e04";

std::unique_ptr<::grpc::ClientContext> As(const std::string& token) {
  auto ctx = Ctx();
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  return ctx;
}

class CallerAuthTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    node_ = new BrokerNode(BrokerNode::Shared());
    std::string tokens =
        absl::StrCat(AMQPGW_TEST_TMP_DIR, "/", UniqueName("tokens"));
    std::ofstream(tokens) << "# role per token\n"
                          << kPublishToken << " publish\n"
                          << kConsumeToken << " consume\n\n"
                          << kAdminToken << " admin\n";
    gateway_ = TestGateway::Start(node_->uri(), [&](daemon::Options& o) {
                 o.auth_tokens = tokens;
               }).release();
    // TestGateway::WaitReady sends no token: wait with the admin's.
    ASSERT_TRUE(WaitFor([] {
      v1::GetStatusResponse r;
      return gateway_->stub()
                 .GetStatus(As(kAdminToken).get(), v1::GetStatusRequest(), &r)
                 .ok() &&
             r.connection().state() == v1::ConnectionInfo::READY;
    }));
  }
  static void TearDownTestSuite() {
    delete gateway_;
    delete node_;
  }

  v1::Gateway::Stub& stub() { return gateway_->stub(); }

  ::grpc::Status Declare(const std::string& token, const std::string& q) {
    v1::DeclareQueueRequest req;
    req.set_name(q);
    v1::DeclareQueueResponse resp;
    return stub().DeclareQueue(As(token).get(), req, &resp);
  }
  ::grpc::Status Publish(const std::string& token, const std::string& q) {
    v1::PublishRequest req;
    req.set_routing_key(q);
    req.set_body("x");
    v1::PublishResponse resp;
    return stub().Publish(As(token).get(), req, &resp);
  }
  // One message on a PublishStream: the stream's error, else the message's.
  ::grpc::Status PublishStream(const std::string& token, const std::string& q) {
    auto ctx = As(token);
    auto stream = stub().PublishStream(ctx.get());
    v1::PublishStreamRequest req;
    req.mutable_message()->set_routing_key(q);
    req.mutable_message()->set_body("x");
    stream->Write(req);
    stream->WritesDone();
    v1::PublishStreamResponse resp;
    bool answered = stream->Read(&resp);
    ::grpc::Status s = stream->Finish();
    if (!s.ok()) return s;
    if (!answered) return ::grpc::Status(StatusCode::INTERNAL, "no answer");
    return ::grpc::Status(static_cast<StatusCode>(resp.result().code()),
                          resp.result().error());
  }
  // Opens a stream; OK once `subscribed` arrived, else the stream's status.
  ::grpc::Status Stream(const std::string& token, const std::string& q) {
    v1::StreamMessagesRequest req;
    req.set_queue(q);
    auto ctx = As(token);
    auto reader = stub().StreamMessages(ctx.get(), req);
    v1::StreamMessagesResponse event;
    if (reader->Read(&event) && event.has_subscribed()) {
      ctx->TryCancel();
      reader->Finish().IgnoreError();
      return ::grpc::Status::OK;
    }
    return reader->Finish();
  }
  ::grpc::Status Delete(const std::string& token, const std::string& q) {
    v1::DeleteQueueRequest req;
    req.set_name(q);
    v1::DeleteQueueResponse resp;
    return stub().DeleteQueue(As(token).get(), req, &resp);
  }
  ::grpc::Status Purge(const std::string& token, const std::string& q) {
    v1::PurgeQueueRequest req;
    req.set_name(q);
    v1::PurgeQueueResponse resp;
    return stub().PurgeQueue(As(token).get(), req, &resp);
  }

  static BrokerNode* node_;
  static TestGateway* gateway_;
};

BrokerNode* CallerAuthTest::node_ = nullptr;
TestGateway* CallerAuthTest::gateway_ = nullptr;

TEST_F(CallerAuthTest, MissingOrWrongTokenIsUnauthenticated) {
  v1::GetStatusResponse status;
  ::grpc::Status s =
      stub().GetStatus(As("").get(), v1::GetStatusRequest(), &status);
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("authorization: Bearer"));
  s = stub().GetStatus(As("not-a-known-token-0000").get(),
                       v1::GetStatusRequest(), &status);
  EXPECT_EQ(s.error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), ::testing::Not(HasSubstr("not-a-known")));
  auto basic = Ctx();
  basic->AddMetadata("authorization", std::string("Basic ") + kAdminToken);
  EXPECT_EQ(stub()
                .GetStatus(basic.get(), v1::GetStatusRequest(), &status)
                .error_code(),
            StatusCode::UNAUTHENTICATED);
  std::string q = UniqueName("auth");
  EXPECT_EQ(Publish("", q).error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Stream("", q).error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(PublishStream("", q).error_code(), StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Delete("wrong-token-wrong-token", q).error_code(),
            StatusCode::UNAUTHENTICATED);
  // Any valid token may read the status.
  for (const char* token : {kPublishToken, kConsumeToken, kAdminToken}) {
    EXPECT_TRUE(
        stub().GetStatus(As(token).get(), v1::GetStatusRequest(), &status).ok())
        << token;
  }
}

TEST_F(CallerAuthTest, RolesAllowWhatTheTableSays) {
  std::string q = UniqueName("auth");
  // Every role may declare.
  EXPECT_TRUE(Declare(kPublishToken, q).ok());
  EXPECT_TRUE(Declare(kConsumeToken, q).ok());

  EXPECT_TRUE(Publish(kPublishToken, q).ok());
  ::grpc::Status s = Publish(kConsumeToken, q);
  EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("'consume' may not call Publish"));

  EXPECT_TRUE(PublishStream(kPublishToken, q).ok());
  s = PublishStream(kConsumeToken, q);
  EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(),
              HasSubstr("'consume' may not call PublishStream"));

  EXPECT_TRUE(Stream(kConsumeToken, q).ok());
  EXPECT_EQ(Stream(kPublishToken, q).error_code(),
            StatusCode::PERMISSION_DENIED);

  // Purge, Delete* and Disconnect need admin.
  for (const char* token : {kPublishToken, kConsumeToken}) {
    s = Purge(token, q);
    EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(s.error_message(), HasSubstr("admin"));
    EXPECT_EQ(Delete(token, q).error_code(), StatusCode::PERMISSION_DENIED);
    v1::DeleteExchangeRequest de;
    de.set_name(UniqueName("ex"));
    v1::DeleteExchangeResponse der;
    EXPECT_EQ(stub().DeleteExchange(As(token).get(), de, &der).error_code(),
              StatusCode::PERMISSION_DENIED);
    v1::DisconnectResponse dr;
    EXPECT_EQ(stub()
                  .Disconnect(As(token).get(), v1::DisconnectRequest(), &dr)
                  .error_code(),
              StatusCode::PERMISSION_DENIED);
  }
  EXPECT_TRUE(Purge(kAdminToken, q).ok());
  EXPECT_TRUE(Publish(kAdminToken, q).ok());
  EXPECT_TRUE(Delete(kAdminToken, q).ok());
}

TEST_F(CallerAuthTest, GetMessagesNeedsConsumeEvenForAPeek) {
  std::string q = UniqueName("auth-get");
  ASSERT_TRUE(Declare(kAdminToken, q).ok());
  ASSERT_TRUE(Publish(kAdminToken, q).ok());
  for (bool ack : {false, true}) {
    v1::GetMessagesRequest req;
    req.set_queue(q);
    req.set_count(1);
    req.set_ack(ack);
    v1::GetMessagesResponse resp;
    ::grpc::Status s = stub().GetMessages(As(kPublishToken).get(), req, &resp);
    EXPECT_EQ(s.error_code(), StatusCode::PERMISSION_DENIED);
    EXPECT_THAT(s.error_message(),
                HasSubstr("'publish' may not call GetMessages"));
  }
  v1::GetMessagesRequest peek;
  peek.set_queue(q);
  peek.set_count(1);
  v1::GetMessagesResponse resp;
  ::grpc::Status s = stub().GetMessages(As(kConsumeToken).get(), peek, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.messages_size(), 1);
  peek.set_ack(true);
  s = stub().GetMessages(As(kConsumeToken).get(), peek, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(Purge(kAdminToken, q).ok(), true);
}

TEST_F(CallerAuthTest, HealthAndReflectionStayOpen) {
  EXPECT_EQ(gateway_->Health(), "SERVING");

  // grpc.reflection.v1alpha ServerReflectionInfo{list_services: ""} without
  // a token, as a generic call (the request is field 7, an empty string).
  auto channel = ::grpc::CreateChannel(gateway_->address(),
                                       ::grpc::InsecureChannelCredentials());
  ::grpc::GenericStub generic(channel);
  ::grpc::CompletionQueue cq;
  ::grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  auto call = generic.PrepareCall(
      &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
      &cq);
  void* tag;
  bool ok;
  auto step = [&](intptr_t want) {
    return cq.Next(&tag, &ok) && reinterpret_cast<intptr_t>(tag) == want && ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(step(1));
  ::grpc::Slice request(std::string("\x3a\x00", 2));
  ::grpc::ByteBuffer request_buffer(&request, 1);
  call->Write(request_buffer, reinterpret_cast<void*>(2));
  ASSERT_TRUE(step(2));
  call->WritesDone(reinterpret_cast<void*>(3));
  ASSERT_TRUE(step(3));
  ::grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(4));
  ASSERT_TRUE(step(4));
  std::vector<::grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const auto& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  EXPECT_THAT(bytes, HasSubstr("amqpgw.v1.Gateway"));
  ::grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  ASSERT_TRUE(step(5));
  EXPECT_TRUE(status.ok()) << status.error_message();
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
}

TEST_F(CallerAuthTest, InProcessChannelOfTheWebBridgeIsCheckedToo) {
  auto stub = v1::Gateway::NewStub(gateway_->daemon().InProcessChannel());
  v1::GetStatusResponse status;
  EXPECT_EQ(stub->GetStatus(As("").get(), v1::GetStatusRequest(), &status)
                .error_code(),
            StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(
      stub->GetStatus(As(kAdminToken).get(), v1::GetStatusRequest(), &status)
          .ok());
  v1::PurgeQueueRequest purge;
  purge.set_name(UniqueName("auth"));
  v1::PurgeQueueResponse purged;
  EXPECT_EQ(
      stub->PurgeQueue(As(kConsumeToken).get(), purge, &purged).error_code(),
      StatusCode::PERMISSION_DENIED);
}

}  // namespace
}  // namespace amqpgw::testing

#include "server/amqp/reply.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace amqpgw::amqp {
namespace {

TEST(ReplyTest, MapsBrokerCodes) {
  struct Case {
    int code;
    absl::StatusCode want;
  } cases[] = {
      {200, absl::StatusCode::kOk},
      {311, absl::StatusCode::kInvalidArgument},
      {312, absl::StatusCode::kFailedPrecondition},
      {313, absl::StatusCode::kFailedPrecondition},
      {320, absl::StatusCode::kUnavailable},
      {402, absl::StatusCode::kInvalidArgument},
      {403, absl::StatusCode::kPermissionDenied},
      {404, absl::StatusCode::kNotFound},
      {405, absl::StatusCode::kFailedPrecondition},
      {406, absl::StatusCode::kFailedPrecondition},
      {501, absl::StatusCode::kInternal},
      {504, absl::StatusCode::kInternal},
      {506, absl::StatusCode::kResourceExhausted},
      {530, absl::StatusCode::kPermissionDenied},
      {540, absl::StatusCode::kUnimplemented},
      {541, absl::StatusCode::kInternal},
      {999, absl::StatusCode::kUnknown},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(ReplyToStatus(c.code, "text").code(), c.want) << c.code;
  }
}

TEST(ReplyTest, KeepsTheBrokerTextWithContext) {
  absl::Status s = ReplyToStatus(404, "NOT_FOUND - no queue 'q' in vhost '/'",
                                 "inspect queue 'q'");
  EXPECT_EQ(s.message(),
            "inspect queue 'q': NOT_FOUND - no queue 'q' in vhost '/'");
  EXPECT_THAT(std::string(ReplyToStatus(406, "").message()),
              ::testing::HasSubstr("406"));
}

TEST(ReplyTest, RecognisesTheRefusalOfAStreamOffset) {
  // RabbitMQ 3.10's words for x-stream-offset on a classic queue.
  EXPECT_TRUE(IsStreamOffsetRefusal(
      406,
      "PRECONDITION_FAILED - invalid arg 'x-stream-offset' for queue 'q' in "
      "vhost '/' of queue type rabbit_classic_queue"));
  EXPECT_FALSE(IsStreamOffsetRefusal(
      406, "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'q'"));
  EXPECT_FALSE(
      IsStreamOffsetRefusal(404, "invalid arg 'x-stream-offset' for queue"));
}

TEST(ReplyTest, ConnectionLostIsUnavailable) {
  absl::Status s = ConnectionLostError("socket closed");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("socket closed"));
}

TEST(ReplyTest, BrokerCloseCarriesItsCode) {
  absl::Status s = BrokerClosedConnectionError(541, "INTERNAL_ERROR");
  EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(
      std::string(s.message()),
      ::testing::HasSubstr("closed by the broker (541 INTERNAL_ERROR)"));
  EXPECT_EQ(BrokerCloseCode(s), 541);
  absl::Status copy = s;  // the worker passes copies to its observers
  EXPECT_EQ(BrokerCloseCode(copy), 541);
  EXPECT_EQ(BrokerCloseCode(ConnectionLostError("socket closed")), 0);
  EXPECT_EQ(BrokerCloseCode(absl::OkStatus()), 0);
}

}  // namespace
}  // namespace amqpgw::amqp

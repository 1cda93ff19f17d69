// PublishFrameEncoder writes exactly the bytes rabbitmq-c's own
// amqp_basic_publish() sends for the same message, captured from a socket
// pair: small and multi-frame bodies, every property, and the errors that
// leave the buffer untouched.
#include "server/amqp/publish_frames.h"

#include <amqp_tcp_socket.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <limits>
#include <string>
#include <thread>

#include "server/amqp/rabbitmq_convert.h"

namespace amqpgw::amqp::internal {
namespace {

struct Message {
  uint16_t channel = 1;
  std::string exchange = "amq.direct";
  std::string routing_key = "key";
  bool mandatory = true;
  Properties properties;
  std::string body;
};

// rabbitmq-c's answer: what amqp_basic_publish() writes to its socket.
std::string RabbitmqCBytes(const Message& m, uint32_t frame_max) {
  int fds[2];
  EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  std::string got;
  std::thread reader([&] {
    char buf[65536];
    for (;;) {
      ssize_t n = read(fds[1], buf, sizeof(buf));
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
  });
  amqp_connection_state_t state = amqp_new_connection();
  // rabbitmq-c tunes a connection only once it has read the broker's first
  // bytes: give it a protocol header.
  amqp_frame_t ignored;
  char header[] = "AMQP\x00\x00\x09\x01";
  amqp_handle_input(state, amqp_bytes_t{8, header}, &ignored);
  EXPECT_EQ(amqp_tune_connection(state, 0, static_cast<int>(frame_max), 0),
            AMQP_STATUS_OK);
  amqp_socket_t* socket = amqp_tcp_socket_new(state);
  amqp_tcp_socket_set_sockfd(socket, fds[0]);
  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  amqp_basic_properties_t props;
  EXPECT_TRUE(ToAmqpProperties(m.properties, &pool, &props).ok());
  EXPECT_EQ(amqp_basic_publish(state, m.channel, Bytes(m.exchange),
                               Bytes(m.routing_key), m.mandatory, 0, &props,
                               Bytes(m.body)),
            AMQP_STATUS_OK);
  shutdown(fds[0], SHUT_WR);
  reader.join();
  empty_amqp_pool(&pool);
  amqp_destroy_connection(state);  // closes fds[0]
  close(fds[1]);
  return got;
}

// The encoder's answer, appended to *out: the head, then the whole body, as
// RabbitConnection::Publish does for a body it can hold.
int EncoderBytes(const Message& m, uint32_t frame_max, std::string* out) {
  PublishFrameEncoder encoder(frame_max);
  amqp_pool_t pool;
  init_amqp_pool(&pool, 4096);
  amqp_basic_properties_t props;
  EXPECT_TRUE(ToAmqpProperties(m.properties, &pool, &props).ok());
  amqp_basic_publish_t method{};
  method.exchange = Bytes(m.exchange);
  method.routing_key = Bytes(m.routing_key);
  method.mandatory = m.mandatory;
  int res = encoder.AppendHead(m.channel, method, props, m.body.size(), out);
  if (res == AMQP_STATUS_OK) {
    EXPECT_EQ(encoder.AppendBody(m.channel, Bytes(m.body), 0,
                                 std::numeric_limits<size_t>::max(), out),
              m.body.size());
  }
  empty_amqp_pool(&pool);
  return res;
}

void ExpectSameBytes(const Message& m, uint32_t frame_max) {
  std::string want = RabbitmqCBytes(m, frame_max);
  std::string got;
  ASSERT_EQ(EncoderBytes(m, frame_max, &got), AMQP_STATUS_OK);
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want) << "body " << m.body.size() << " bytes, frame_max "
                           << frame_max;
}

Properties EveryProperty() {
  Properties p;
  p.content_type = "application/json";
  p.content_encoding = "gzip";
  p.headers = FieldTable{
      {"string", FieldValue(std::string("v\0w", 3))},
      {"int", FieldValue(std::numeric_limits<int64_t>::min())},
      {"double", FieldValue(2.5)},
      {"bool", FieldValue(true)},
      {"table", FieldValue(FieldTable{{"n", FieldValue(int64_t{7})}})},
      {"array", FieldValue(FieldArray{FieldValue(std::string("a"))})},
  };
  p.delivery_mode = 2;
  p.priority = 9;
  p.correlation_id = "corr";
  p.reply_to = "replies";
  p.expiration = "60000";
  p.message_id = "id-1";
  p.timestamp = 1700000000;
  p.type = "t";
  p.user_id = "guest";
  p.app_id = "amqpgw";
  p.cluster_id = "c";
  return p;
}

TEST(PublishFrameEncoderTest, EmptyBodyAndNoProperties) {
  Message m;
  m.exchange = "";
  m.mandatory = false;
  ExpectSameBytes(m, 131072);
}

TEST(PublishFrameEncoderTest, EveryPropertyOnAnotherChannel) {
  Message m;
  m.channel = 65535;
  m.exchange = std::string(255, 'x');
  m.routing_key = std::string(255, 'k');
  m.properties = EveryProperty();
  m.body = std::string(100, 'b');
  ExpectSameBytes(m, 131072);
}

TEST(PublishFrameEncoderTest, BodiesAroundTheFrameSize) {
  for (uint32_t frame_max : {4096u, 131072u}) {
    const size_t payload = frame_max - 8;
    for (size_t size : {payload - 1, payload, payload + 1, 3 * payload + 5}) {
      Message m;
      m.properties.delivery_mode = 2;
      m.body.resize(size);
      for (size_t i = 0; i < size; ++i) m.body[i] = static_cast<char>(i * 7);
      ExpectSameBytes(m, frame_max);
    }
  }
}

TEST(PublishFrameEncoderTest, AppendsAfterWhatIsHeld) {
  Message a;
  a.body = "first";
  Message b;
  b.channel = 2;
  b.body = "second";
  std::string got;
  ASSERT_EQ(EncoderBytes(a, 131072, &got), AMQP_STATUS_OK);
  ASSERT_EQ(EncoderBytes(b, 131072, &got), AMQP_STATUS_OK);
  EXPECT_EQ(got, RabbitmqCBytes(a, 131072) + RabbitmqCBytes(b, 131072));
}

// What RabbitConnection does with a large body: the head, then the body a
// few frames at a time, the buffer written away (here: moved) in between.
TEST(PublishFrameEncoderTest, ABodyInPartsIsTheSameBytes) {
  Message m;
  m.body.resize(10 * 4088 + 17);
  for (size_t i = 0; i < m.body.size(); ++i) {
    m.body[i] = static_cast<char>(i % 251);
  }
  PublishFrameEncoder encoder(4096);
  amqp_basic_publish_t method{};
  method.exchange = Bytes(m.exchange);
  method.routing_key = Bytes(m.routing_key);
  method.mandatory = m.mandatory;
  amqp_basic_properties_t props{};
  std::string held, written;
  ASSERT_EQ(encoder.AppendHead(1, method, props, m.body.size(), &held),
            AMQP_STATUS_OK);
  size_t offset = 0;
  int parts = 0;
  do {
    offset = encoder.AppendBody(1, Bytes(m.body), offset, 3 * 4096, &held);
    EXPECT_LT(held.size(), 4 * 4096);  // bounded by the limit plus a frame
    written += held;
    held.clear();
    ++parts;
  } while (offset < m.body.size());
  EXPECT_EQ(offset, m.body.size());
  EXPECT_GT(parts, 2);
  EXPECT_TRUE(written == RabbitmqCBytes(m, 4096));
}

TEST(PublishFrameEncoderTest, WhatDoesNotEncodeLeavesTheBufferAlone) {
  Message long_name;
  long_name.exchange = std::string(256, 'x');  // a shortstr holds 255
  std::string out = "held";
  EXPECT_LT(EncoderBytes(long_name, 131072, &out), 0);
  EXPECT_EQ(out, "held");

  Message big_header;  // the content header must fit in one frame
  big_header.properties.headers =
      FieldTable{{"big", FieldValue(std::string(5000, 'h'))}};
  EXPECT_LT(EncoderBytes(big_header, 4096, &out), 0);
  EXPECT_EQ(out, "held");
  // The same header fits a larger frame.
  ExpectSameBytes(big_header, 131072);
}

}  // namespace
}  // namespace amqpgw::amqp::internal

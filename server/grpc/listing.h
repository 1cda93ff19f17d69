// The listing RPCs (ListQueues, ListExchanges, ListBindings, ListConsumers)
// and InspectQueue's details: requests validated and turned into queries of
// the broker's management API (server/management), its answers turned into
// the API's messages. Errors name the request field. Pure functions: any
// thread.
#ifndef AMQPGW_SERVER_GRPC_LISTING_H_
#define AMQPGW_SERVER_GRPC_LISTING_H_

#include <string>

#include "absl/status/statusor.h"
#include "amqpgw/v1/gateway.pb.h"
#include "server/grpc/convert.h"
#include "server/management/backend.h"
#include "server/management/client.h"
#include "server/management/types.h"

namespace amqpgw::grpc_api {

// --- API -> management queries. ---

// The filter, page size and page token of ListQueues / ListExchanges.
absl::StatusOr<management::ListQuery> ToListQuery(
    const v1::NameFilter* filter, uint32_t page_size,
    const std::string& page_token);
absl::StatusOr<management::BindingFilter> ToBindingFilter(
    const v1::ListBindingsRequest& request);

// --- management answers -> API. ---

void ToProtoArguments(const management::Arguments& arguments, ProtoTable* out);
void ToProtoQueue(const management::Queue& queue, v1::QueueInfo* out);
void ToProtoExchange(const management::Exchange& exchange,
                     v1::ExchangeInfo* out);
void ToProtoBinding(const management::Binding& binding, v1::BindingInfo* out);
void ToProtoConsumer(const management::Consumer& consumer,
                     v1::ConsumerInfo* out);
// The token of the page after `page`; empty after the last.
template <typename T>
std::string NextPageToken(const management::Page<T>& page) {
  return page.page < page.page_count ? std::to_string(page.page + 1) : "";
}
void ToProtoListingStatus(const management::Backend::Status& status,
                          v1::ListingStatus* out);

}  // namespace amqpgw::grpc_api

#endif  // AMQPGW_SERVER_GRPC_LISTING_H_

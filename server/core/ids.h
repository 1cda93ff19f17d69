// Identifiers made by the gateway.
#ifndef AMQPGW_SERVER_CORE_IDS_H_
#define AMQPGW_SERVER_CORE_IDS_H_

#include <string>

namespace amqpgw::core {

// `bytes` random bytes from the kernel's CSPRNG, as lowercase hex. For ids
// that must be unguessable (subscription ids).
std::string SecureRandomHex(int bytes);

// A random (version 4) UUID in canonical form, for message ids. Fast; not
// for secrets. Thread-safe.
std::string NewUuid();

}  // namespace amqpgw::core

#endif  // AMQPGW_SERVER_CORE_IDS_H_

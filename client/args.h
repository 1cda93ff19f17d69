// Command-line parsing for amqpgw: flags (--name=value, --name value,
// --bool, --bool=false), positional arguments and "--". Knows nothing of
// gRPC. In flag names '-' and '_' are the same character.
#ifndef AMQPGW_CLIENT_ARGS_H_
#define AMQPGW_CLIENT_ARGS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace amqpgw::cli {

// One accepted flag. A flag without `value_name` is boolean.
struct FlagSpec {
  std::string name;        // as shown in help, e.g. "content-type", "tls_ca"
  std::string value_name;  // e.g. "TYPE"; empty for a boolean flag
  std::string help;
  bool repeated = false;  // may be given more than once (all kept)
};

// What ParseArgs found. Owns copies of the values.
class ParsedArgs {
 public:
  bool Has(absl::string_view name) const;
  // The last value given, or `fallback`.
  std::string Get(absl::string_view name,
                  const std::string& fallback = "") const;
  // Every value given, in order.
  std::vector<std::string> GetAll(absl::string_view name) const;
  // A boolean flag: given and not "--name=false".
  bool GetBool(absl::string_view name) const;

  void Add(absl::string_view name, std::string value);
  // Values of `other` are added after (and so win over) this one's.
  void Merge(const ParsedArgs& other);

  std::vector<std::string> positionals;
  bool help = false;  // -h or --help was given

 private:
  std::map<std::string, std::vector<std::string>> values_;
};

// "tls_ca" and "tls-ca" are the same flag: both become "tls-ca".
std::string NormalizeFlagName(absl::string_view name);

// Parses `args` against `specs` (every flag allowed here). With
// `stop_at_positional`, parsing stops at the first positional argument and
// `*consumed` tells how many arguments were used. Errors are usage errors
// ("unknown flag --x", "--priority needs a value").
absl::Status ParseArgs(const std::vector<std::string>& args,
                       const std::vector<const FlagSpec*>& specs,
                       ParsedArgs* out, bool stop_at_positional = false,
                       size_t* consumed = nullptr);

}  // namespace amqpgw::cli

#endif  // AMQPGW_CLIENT_ARGS_H_

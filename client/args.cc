#include "client/args.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace amqpgw::cli {

std::string NormalizeFlagName(absl::string_view name) {
  std::string out(name);
  std::replace(out.begin(), out.end(), '_', '-');
  return out;
}

bool ParsedArgs::Has(absl::string_view name) const {
  return values_.count(NormalizeFlagName(name)) > 0;
}

std::string ParsedArgs::Get(absl::string_view name,
                            const std::string& fallback) const {
  auto it = values_.find(NormalizeFlagName(name));
  if (it == values_.end() || it->second.empty()) return fallback;
  return it->second.back();
}

std::vector<std::string> ParsedArgs::GetAll(absl::string_view name) const {
  auto it = values_.find(NormalizeFlagName(name));
  if (it == values_.end()) return {};
  return it->second;
}

bool ParsedArgs::GetBool(absl::string_view name) const {
  return Has(name) && Get(name) != "false";
}

void ParsedArgs::Add(absl::string_view name, std::string value) {
  values_[NormalizeFlagName(name)].push_back(std::move(value));
}

void ParsedArgs::Merge(const ParsedArgs& other) {
  for (const auto& [name, values] : other.values_) {
    auto& mine = values_[name];
    mine.insert(mine.end(), values.begin(), values.end());
  }
  positionals.insert(positionals.end(), other.positionals.begin(),
                     other.positionals.end());
  help = help || other.help;
}

absl::Status ParseArgs(const std::vector<std::string>& args,
                       const std::vector<const FlagSpec*>& specs,
                       ParsedArgs* out, bool stop_at_positional,
                       size_t* consumed) {
  size_t i = 0;
  bool only_positionals = false;
  for (; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (only_positionals || arg == "-" || !absl::StartsWith(arg, "-")) {
      if (stop_at_positional) break;
      out->positionals.push_back(arg);
      continue;
    }
    if (arg == "--") {
      if (stop_at_positional) {
        ++i;
        break;
      }
      only_positionals = true;
      continue;
    }
    if (arg == "-h" || arg == "--help") {
      out->help = true;
      continue;
    }
    if (!absl::StartsWith(arg, "--")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown flag ", arg, " (flags are --name or --name=value)"));
    }
    std::string body = arg.substr(2);
    std::string name = body;
    bool has_value = false;
    std::string value;
    if (size_t eq = body.find('='); eq != std::string::npos) {
      name = body.substr(0, eq);
      value = body.substr(eq + 1);
      has_value = true;
    }
    const std::string key = NormalizeFlagName(name);
    const FlagSpec* spec = nullptr;
    for (const FlagSpec* s : specs) {
      if (NormalizeFlagName(s->name) == key) spec = s;
    }
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    }
    if (spec->value_name.empty()) {
      if (has_value && value != "true" && value != "false") {
        return absl::InvalidArgumentError(absl::StrCat(
            "--", spec->name, " takes no value (or =true / =false), got '",
            value, "'"));
      }
      out->Add(key, has_value ? value : "true");
      continue;
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--", spec->name, " needs a value (", spec->value_name, ")"));
      }
      value = args[++i];
    }
    if (!spec->repeated && out->Has(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", spec->name, " given twice"));
    }
    out->Add(key, std::move(value));
  }
  if (consumed != nullptr) *consumed = i;
  return absl::OkStatus();
}

}  // namespace amqpgw::cli

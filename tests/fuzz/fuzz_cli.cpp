// The command line's parsing (train/cli.h): the input is an argument list, one argument per
// line. Parsing never runs a command here; it must end in a command to run, or in an exit
// status with at most one line of error.
#include <string_view>

#include "tests/fuzz/fuzz_support.h"
#include "tessera/train/cli.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tessera;
  std::vector<std::string> args;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    args.emplace_back(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
  }
  fuzz::expect_only_tessera_errors([&] {
    const cli::Parsed p = cli::parse(args);
    if (p.run) return;
    fuzz::require(p.status == 0 || p.status == 2, "parse ended with an exit status other than 0 or 2");
    fuzz::require(p.status == 0 || !p.error.empty(), "a usage error without a message");
    fuzz::require(p.error.empty() || p.error.find('\n') == p.error.size() - 1, "an error of more than one line");
  });
  return 0;
}

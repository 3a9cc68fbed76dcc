// The YAML config loader and --set overrides: any text. An accepted config must dump to
// YAML that loads back to an equal config.
#include <string_view>

#include "tests/fuzz/fuzz_support.h"
#include "tessera/train/config.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tessera;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_only_tessera_errors([&] {
    const train::TrainConfig cfg = train::load_config_string(text, "fuzz.yaml");
    const train::TrainConfig again = train::load_config_string(train::dump_config(cfg), "dump.yaml");
    fuzz::require(again == cfg, "dump_config does not round-trip");
  });
  fuzz::expect_only_tessera_errors([&] {
    train::TrainConfig cfg;
    const train::ConfigOverride o = train::parse_override(text);
    train::apply_overrides(cfg, std::vector<train::ConfigOverride>{o});
  });
  return 0;
}

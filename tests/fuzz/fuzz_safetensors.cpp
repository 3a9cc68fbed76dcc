// The safetensors reader: any bytes. An accepted file, saved again and reloaded, must give
// the same tensors and metadata.
#include <cstring>

#include "tests/fuzz/fuzz_support.h"
#include "tessera/autograd/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tessera;
  const auto path = fuzz::input_file(data, size, "input.safetensors");
  fuzz::expect_only_tessera_errors([&] { io::read_safetensors_header(path); });
  fuzz::expect_only_tessera_errors([&] {
    const io::SafetensorsFile file = io::load_safetensors(path);
    const auto copy = path.parent_path() / "copy.safetensors";
    io::save_safetensors(copy, file.tensors, file.metadata);
    const io::SafetensorsFile again = io::load_safetensors(copy);
    fuzz::require(again.metadata == file.metadata, "metadata changed in a save/load round trip");
    fuzz::require(again.tensors.size() == file.tensors.size(), "tensor count changed in a round trip");
    for (const auto& [name, t] : file.tensors) {
      const Tensor& u = again.tensors.at(name);
      fuzz::require(u.shape() == t.shape() && u.dtype() == t.dtype(), "shape or dtype changed in a round trip");
      fuzz::require(t.nbytes() == 0 || std::memcmp(t.raw_data(), u.raw_data(), t.nbytes()) == 0,
                    "tensor bytes changed in a round trip");
    }
  });
  return 0;
}

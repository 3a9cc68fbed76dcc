// Image decoding (stb_image behind the image-folder dataset and `predict`): any bytes,
// decoded to grey 8x8 and to RGB 12x10 (resizing and channel conversion included).
#include <vector>

#include "tessera/datasets/image_folder.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tessera;
  for (const datasets::ImageShape shape : {datasets::ImageShape{1, 8, 8}, datasets::ImageShape{3, 12, 10}}) {
    std::vector<std::uint8_t> out(static_cast<std::size_t>(shape.numel()));
    fuzz::expect_only_tessera_errors([&] { datasets::decode_image({data, size}, shape, out, "fuzz input"); });
  }
  return 0;
}

// The IDX reader (MNIST, Fashion-MNIST), raw or gzipped: any bytes, as images and as labels.
#include "tessera/datasets/idx.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tessera;
  const auto path = fuzz::input_file(data, size, "input-idx3-ubyte");
  fuzz::expect_only_tessera_errors([&] {
    const datasets::IdxImages images = datasets::read_idx_images(path);
    fuzz::require(images.offset + static_cast<std::size_t>(images.count * images.rows * images.cols) ==
                      images.content.size(),
                  "an accepted images file whose size does not match its header");
  });
  fuzz::expect_only_tessera_errors([&] {
    const datasets::IdxLabels labels = datasets::read_idx_labels(path);
    fuzz::require(labels.count() >= 0, "negative label count");
    // Pairing with itself checks the label range against 10 classes.
    datasets::load_idx(path, path, 10, "fuzz");
  });
  return 0;
}

// The CIFAR-10 binary reader: any bytes as one batch file.
#include "tessera/datasets/cifar.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace tessera;
  const auto path = fuzz::input_file(data, size, "data_batch_1.bin");
  fuzz::expect_only_tessera_errors([&] {
    const auto ds = datasets::load_cifar10_files({path}, "fuzz");
    fuzz::require(ds->size() * datasets::kCifarRecordBytes == static_cast<std::int64_t>(size),
                  "an accepted CIFAR file whose record count does not match its size");
    for (std::int64_t i = 0; i < ds->size(); ++i) fuzz::require(ds->label(i) < 10, "label out of range accepted");
  });
  return 0;
}

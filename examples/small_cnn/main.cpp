// A small CNN on MNIST, built outside the Tessera tree with find_package(Tessera).
// Usage: small_cnn [MNIST_DIR] [EPOCHS]; without a directory it trains on synthetic digits.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <tessera/tessera.h>

namespace ts = tessera;

struct SmallCnn : ts::nn::UnaryModule {  // parameters: conv1.weight, conv2.bias, head.weight, ...
  SmallCnn()
      : conv1(register_module("conv1", ts::nn::Conv2d(1, 16, 3, {.stride = 2, .padding = 1}))),
        conv2(register_module("conv2", ts::nn::Conv2d(16, 32, 3, {.stride = 2, .padding = 1}))),
        head(register_module("head", ts::nn::Linear(32 * 7 * 7, 10))) {}
  std::string type_name() const override { return "SmallCnn"; }
  ts::Tensor forward(const ts::Tensor& x) override {  // x: (B, 1, 28, 28) -> logits (B, 10)
    const ts::Tensor h = ts::relu(conv2(ts::relu(conv1(x))));  // (B, 32, 7, 7)
    return head(h.reshape({x.size(0), -1}));
  }
  ts::nn::Conv2d& conv1;
  ts::nn::Conv2d& conv2;
  ts::nn::Linear& head;
};

int main(int argc, char** argv) try {
  const std::string root = argc > 1 ? argv[1] : "";
  const int epochs = argc > 2 ? std::atoi(argv[2]) : 1;
  namespace data = ts::datasets;
  auto open = [&](data::Split split) {
    return root.empty() ? data::make_dataset("synthetic", "", split, {.size = split == data::Split::train ? 2048 : 512})
                        : data::make_dataset("mnist", root, split);
  };
  data::DataLoader train(open(data::Split::train), {.batch_size = 64, .seed = 1});
  data::DataLoader test(open(data::Split::test), {.batch_size = 256, .shuffle = false});

  ts::manual_seed(1);
  SmallCnn model;
  ts::optim::AdamW opt(model.parameters(), {.lr = 2e-3, .weight_decay = 0.01});
  for (int epoch = 0; epoch < epochs; ++epoch) {
    double loss_sum = 0;
    std::int64_t seen = 0;
    for (auto [x, y] : train) {
      ts::Tensor loss = ts::cross_entropy(model(x), y);
      opt.zero_grad();
      ts::backward(loss);
      opt.step();
      loss_sum += loss.item() * static_cast<double>(y.numel());
      seen += y.numel();
    }
    model.eval();
    std::int64_t right = 0, total = 0;
    {
      ts::NoGradGuard no_grad;
      for (auto [x, y] : test) {
        const auto pred = ts::argmax(model(x), 1).to_vector<std::int64_t>();
        const auto want = y.to_vector<std::int64_t>();
        for (std::size_t i = 0; i < want.size(); ++i) right += pred[i] == want[i];
        total += y.numel();
      }
    }
    model.train();
    std::printf("epoch %d: train loss %.4f, test accuracy %.2f%%\n", epoch + 1, loss_sum / seen, 100.0 * right / total);
  }
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "small_cnn: %s\n", e.what());
  return 1;
}

// The README's "build a ViT and take one training step" example, compiled and run by the
// tests (tests/CMakeLists.txt), which also check that the README shows this exact code.
#include <cstdio>

// README-BEGIN
#include <tessera/tessera.h>
namespace ts = tessera;

int main() {
  ts::models::ViTConfig cfg = ts::models::ViTConfig::preset("seed-mnist");
  cfg.depth = 2;                                  // any field can be changed
  ts::models::ViT model(cfg);                     // timm names and initialisation

  ts::optim::AdamW opt(ts::optim::split_weight_decay(model.named_parameters(), 0.05), {.lr = 1e-3});
  ts::Tensor images = ts::randn({8, 1, 28, 28});  // (B, C, H, W)
  ts::Tensor labels = ts::randint({8}, 10);       // (B) class indices

  ts::Tensor loss = ts::cross_entropy(model(images), labels);
  opt.zero_grad();
  ts::backward(loss);
  opt.step();
  std::printf("loss %.4f, %lld parameters\n", loss.item(), static_cast<long long>(model.num_parameters()));
}
// README-END

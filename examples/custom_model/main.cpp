// A model of one's own with the whole `tessera` command line: register it, then hand over
// to the library's CLI. `custom_model train mini_cnn.yaml`, `eval`, `predict`, `summary`,
// `gradcheck`, `bench --config` and `--resume` all work for it, from YAML.
#include <tessera/tessera.h>

namespace ts = tessera;

// What model.* holds for this model: the config section is declared below, key by key.
struct MiniCnnConfig {
  std::int64_t image_h = 28, image_w = 28, channels = 1, num_classes = 10;
  std::int64_t width = 16;
  double dropout = 0.1;
};

// Two conv-BN-SiLU-pool stages, global average pooling, a linear head.
// x (B, C, H, W) -> logits (B, num_classes). Parameters: stem.0.weight, ..., head.bias.
struct MiniCnn : ts::nn::UnaryModule {
  explicit MiniCnn(const MiniCnnConfig& c)
      : stem(register_module("stem", ts::nn::Sequential())),
        drop(register_module("drop", ts::nn::Dropout(c.dropout))),
        head(register_module("head", ts::nn::Linear(2 * c.width, c.num_classes))) {
    std::int64_t in = c.channels;
    for (std::int64_t out : {c.width, 2 * c.width}) {
      stem.push_back(ts::nn::Conv2d(in, out, 3, {.padding = 1, .bias = false}));
      stem.push_back(ts::nn::BatchNorm2d(out));
      stem.push_back(ts::nn::SiLU());
      stem.push_back(ts::nn::MaxPool2d(2));
      in = out;
    }
  }
  std::string type_name() const override { return "MiniCnn"; }
  ts::Tensor forward(const ts::Tensor& x) override { return head(drop(ts::mean(stem(x), {2, 3}))); }

  ts::nn::Sequential& stem;
  ts::nn::Dropout& drop;
  ts::nn::Linear& head;
};

ts::models::ModelSpec mini_cnn_spec() {
  ts::models::ModelSchema<MiniCnnConfig> schema;
  schema.image_size("image_size", &MiniCnnConfig::image_h, &MiniCnnConfig::image_w, "Input height and width.")
      .integer("channels", &MiniCnnConfig::channels, 1, 64, "Input channels.")
      .integer("num_classes", &MiniCnnConfig::num_classes, 1, 100000, "Number of classes.")
      .integer("width", &MiniCnnConfig::width, 1, 1024, "Channels of the first stage (the second has twice).")
      .rate("dropout", &MiniCnnConfig::dropout, "Dropout before the head.");
  return ts::models::model_spec<MiniCnnConfig>(
      "mini_cnn", "Two conv-BN-SiLU-pool stages and a linear head (examples/custom_model).", MiniCnnConfig{}, schema,
      [](const MiniCnnConfig& c) { return ts::models::ModelInput{c.channels, c.image_h, c.image_w, c.num_classes}; },
      [](const MiniCnnConfig& c, ts::Generator&) -> std::unique_ptr<ts::nn::UnaryModule> {
        return std::make_unique<MiniCnn>(c);
      },
      [](const MiniCnnConfig& c) {  // what no single key's range can say
        if (c.image_h < 4 || c.image_w < 4)
          throw ts::ConfigError("model.image_size: mini_cnn pools twice and needs at least 4x4 images");
      });
}

int main(int argc, char** argv) {
  ts::models::register_model(mini_cnn_spec());
  return ts::cli::main(argc, argv);
}

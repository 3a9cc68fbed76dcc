// nn: the Module tree, every layer's gradients (f64), and the attention layers against
// small hand-computed examples.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "tessera/autograd/safetensors.h"
#include "tessera/nn/attention.h"
#include "tessera/nn/transformer.h"
#include "support/test_support.h"

using namespace tessera;
using test::check_close;
using test::input;

namespace {

// Gradient-checks a module in f64 with respect to its input and every parameter.
void check_module(nn::Module& m, const std::function<Tensor(const Tensor&)>& run, const Shape& in_shape,
                  std::uint64_t seed = 1) {
  m.to(DType::f64);
  // Parameters that start at zero (SAGAN's gamma, LayerNorm bias) would hide terms: move them.
  Generator g(seed + 100);
  for (auto& [name, p] : m.named_parameters()) {
    Tensor t = p;
    t.copy_(t.detach() + uniform(p.shape(), -0.5, 0.5, {.dtype = DType::f64}, g));
  }
  std::vector<Tensor> inputs{input(in_shape, seed)};
  for (const Tensor& p : m.parameters()) inputs.push_back(p);
  test::check_gradients([&](const std::vector<Tensor>& in) { return run(in[0]); }, inputs);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(nn_module)

struct Tiny : nn::UnaryModule {
  Tiny() : fc(register_module("fc", nn::Linear(4, 3))), norm(register_module("norm", nn::LayerNorm(3))) {
    scale = register_parameter("scale", ones({3}));
    register_buffer("offset", zeros({3}));
  }
  std::string type_name() const override { return "Tiny"; }
  Tensor forward(const Tensor& x) override { return norm(fc(x)) * scale; }
  nn::Linear& fc;
  nn::LayerNorm& norm;
  Tensor scale;
};

BOOST_AUTO_TEST_CASE(named_parameters_follow_registration_order) {
  Tiny m;
  std::vector<std::string> names;
  for (auto& [n, t] : m.named_parameters()) names.push_back(n);
  BOOST_TEST((names == std::vector<std::string>{"scale", "fc.weight", "fc.bias", "norm.weight", "norm.bias"}));
  BOOST_TEST(m.num_parameters() == 3 + 12 + 3 + 3 + 3);
  BOOST_TEST(m.state_dict().size() == 6u);  // plus the buffer
  BOOST_TEST(m.named_buffers().front().first == "offset");
  for (const Tensor& p : m.parameters()) BOOST_TEST(p.requires_grad());
}

BOOST_AUTO_TEST_CASE(train_eval_and_zero_grad_reach_every_child) {
  Tiny m;
  m.eval();
  BOOST_TEST(!m.fc.is_training());
  m.train();
  BOOST_TEST(m.norm.is_training());
  backward(sum(m(ones({2, 4}))));
  BOOST_TEST(m.fc.weight.grad().defined());
  m.zero_grad();
  for (const Tensor& p : m.parameters()) BOOST_TEST(!p.grad().defined());
}

BOOST_AUTO_TEST_CASE(load_state_dict_copies_in_place_and_lists_every_mismatch) {
  Tiny a, b;
  b.load_state_dict(a.state_dict());
  BOOST_TEST(allclose(b.fc.weight, a.fc.weight, 0, 0));
  Tensor handle = b.fc.weight;  // handles stay valid: values are copied in place
  a.fc.weight.fill_(0.5);
  b.load_state_dict(a.state_dict());
  BOOST_TEST(handle.to_vector<float>()[0] == 0.5f);
  nn::NamedTensors bad = a.state_dict();
  bad.erase(bad.begin());                 // missing "scale"
  bad.emplace_back("extra", zeros({1}));  // unexpected
  for (auto& [n, t] : bad)
    if (n == "fc.weight") t = zeros({9, 9});  // mis-shaped
  try {
    b.load_state_dict(bad);
    BOOST_ERROR("no error");
  } catch (const ShapeError& e) {
    BOOST_TEST(std::string(e.what()) ==
               "load_state_dict: Tiny does not match the state: missing (1): scale; unexpected (1): extra; "
               "mis-shaped (1): fc.weight (9,9) in the state, (3,4) in the model");
  }
  // Every name, however many: 40 unexpected ones are all listed.
  nn::NamedTensors many = a.state_dict();
  for (int i = 0; i < 40; ++i) many.emplace_back(fmt::format("head{}.weight", i), zeros({1}));
  try {
    b.load_state_dict(many);
    BOOST_ERROR("no error");
  } catch (const ShapeError& e) {
    const std::string w = e.what();
    BOOST_TEST(w.find("unexpected (40): head0.weight, ") != std::string::npos);
    BOOST_TEST(w.find("head39.weight") != std::string::npos);
    BOOST_TEST(w.find("more") == std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(save_and_load_round_trip_and_refuse_what_does_not_fit) {
  test::TempDir dir("nn_save");
  Tiny a, b;
  a.fc.weight.fill_(0.25);
  nn::save(a, dir.path() / "tiny.safetensors", {{"note", "hello"}});
  const auto meta = nn::load(b, dir.path() / "tiny.safetensors");
  BOOST_TEST(meta.at("note") == "hello");
  for (std::size_t i = 0; i < a.state_dict().size(); ++i)
    BOOST_TEST(allclose(b.state_dict()[i].second, a.state_dict()[i].second, 0, 0));

  // Another model's file: every name that differs is named, with the file.
  nn::Sequential other;
  other.push_back(nn::Linear(4, 3));
  nn::save(other, dir.path() / "other.safetensors");
  try {
    nn::load(b, dir.path() / "other.safetensors");
    BOOST_ERROR("no error");
  } catch (const ShapeError& e) {
    const std::string w = e.what();
    BOOST_TEST(w.find("other.safetensors") != std::string::npos);
    BOOST_TEST(w.find("missing (6): scale, offset, fc.weight, fc.bias, norm.weight, norm.bias") != std::string::npos);
    BOOST_TEST(w.find("unexpected (2): 0.bias, 0.weight") != std::string::npos);
  }

  // Non-finite values are refused by name, and the module keeps its weights.
  a.norm.weight.fill_(std::nan(""));
  nn::save(a, dir.path() / "nan.safetensors");
  try {
    nn::load(b, dir.path() / "nan.safetensors");
    BOOST_ERROR("no error");
  } catch (const IoError& e) {
    BOOST_TEST(std::string(e.what()).find("tensor norm.weight holds 3 non-finite values") != std::string::npos);
  }
  BOOST_TEST(b.norm.weight.to_vector<float>()[0] == 1.0f);

  // A training checkpoint's optimizer state ("optim.*") is skipped.
  io::TensorMap with_optim;
  for (const auto& [n, t] : b.state_dict()) with_optim.emplace(n, t);
  with_optim.emplace("optim.0.exp_avg", zeros({3}));
  io::save_safetensors(dir.path() / "checkpoint.safetensors", with_optim);
  BOOST_CHECK_NO_THROW(nn::load(a, dir.path() / "checkpoint.safetensors"));
}

BOOST_AUTO_TEST_CASE(errors_inside_a_model_name_the_module_once) {
  struct Inner : nn::UnaryModule {
    Inner() : body(register_module("body", nn::Sequential())) {
      body.push_back(nn::Linear(4, 8));
      body.push_back(nn::Linear(5, 2));  // does not take the 8 features it is given
    }
    std::string type_name() const override { return "Inner"; }
    Tensor forward(const Tensor& x) override { return body(x); }
    nn::Sequential& body;
  };
  struct Outer : nn::UnaryModule {
    Outer() : blocks(register_module("blocks", nn::Sequential())) {
      blocks.push_back(nn::Identity());
      blocks.push_back(Inner());
    }
    std::string type_name() const override { return "Outer"; }
    Tensor forward(const Tensor& x) override { return blocks(x); }
    nn::Sequential& blocks;
  };
  Outer m;
  for (int attempt = 0; attempt < 2; ++attempt) {  // nothing of the first error lingers
    try {
      m(zeros({2, 4}));
      BOOST_ERROR("no error");
    } catch (const ShapeError& e) {
      const std::string w = e.what();
      BOOST_TEST(w.starts_with("blocks.1.body.1 (Linear): linear: "), w);
      BOOST_TEST(w.find("(Linear)", 20) == std::string::npos, w);  // prefixed once
    }
  }
  // An error of the module called directly carries no path; a good call still works.
  nn::Linear lin(4, 2);
  try {
    lin(zeros({2, 3}));
    BOOST_ERROR("no error");
  } catch (const ShapeError& e) {
    BOOST_TEST(std::string(e.what()).starts_with("linear: "), e.what());
  }
  BOOST_TEST((m.blocks[0](ones({1, 4})).shape() == Shape{1, 4}));
}

BOOST_AUTO_TEST_CASE(conv2d_names_the_rank_it_expects) {
  nn::Conv2d conv(1, 4, 3);
  try {
    conv(zeros({1, 28, 28}));
    BOOST_ERROR("no error");
  } catch (const ShapeError& e) {
    BOOST_TEST(std::string(e.what()) == "conv2d: expected a 4-D input (B, C, H, W), got x (1,28,28) (3-D)");
  }
}

BOOST_AUTO_TEST_CASE(duplicate_or_dotted_names_are_errors) {
  struct Bad : nn::Module {
    std::string type_name() const override { return "Bad"; }
    void add(const std::string& n) { register_parameter(n, zeros({1})); }
  } bad;
  bad.add("w");
  BOOST_CHECK_THROW(bad.add("w"), Error);
  BOOST_CHECK_THROW(bad.add("a.b"), Error);
}

BOOST_AUTO_TEST_CASE(summary_lists_layers_shapes_and_counts) {
  nn::Sequential s;
  s.push_back(nn::Linear(8, 16));
  s.push_back(nn::GELU());
  s.push_back(nn::Linear(16, 2));
  const std::string table = nn::summary(s, [&] { s(zeros({5, 8})); });
  BOOST_TEST(table.find("Linear (0)") != std::string::npos);
  BOOST_TEST(table.find("(5,16)") != std::string::npos);
  BOOST_TEST(table.find("(5,2)") != std::string::npos);
  BOOST_TEST(table.find("Total params: 178") != std::string::npos);  // 8*16+16 + 16*2+2
  BOOST_TEST(s.is_training());  // restored after the summary's eval pass
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(gradcheck_layers)

BOOST_AUTO_TEST_CASE(linear) {
  nn::Linear l(5, 3);
  check_module(l, [&](const Tensor& x) { return l(x); }, {2, 4, 5});
  nn::Linear nb(5, 3, {.bias = false});
  check_module(nb, [&](const Tensor& x) { return nb(x); }, {4, 5});
}

BOOST_AUTO_TEST_CASE(layer_norm) {
  nn::LayerNorm n(6, {.eps = 1e-6});
  check_module(n, [&](const Tensor& x) { return n(x); }, {3, 6});
}

BOOST_AUTO_TEST_CASE(conv2d) {
  nn::Conv2d c(2, 3, 3, {.stride = 2, .padding = 1});
  check_module(c, [&](const Tensor& x) { return c(x); }, {2, 2, 5, 5});
}

BOOST_AUTO_TEST_CASE(activations_and_dropout) {
  nn::GELU g;
  check_module(g, [&](const Tensor& x) { return g(x); }, {3, 4});
  nn::Sequential s;
  s.push_back(nn::Linear(4, 4));
  s.push_back(nn::ReLU());
  s.push_back(nn::Dropout(0.5));
  s.eval();  // dropout is the identity in eval
  check_module(s, [&](const Tensor& x) { return s(x); }, {3, 4});
}

BOOST_AUTO_TEST_CASE(drop_path) {
  Generator gen;
  nn::DropPath d(0.5, &gen);
  d.train();
  nn::Linear l(3, 3);
  check_module(l, [&](const Tensor& x) {
    gen.set_state({7, 0});  // the same per-sample draw on every evaluation
    return d(l(x));
  }, {6, 2, 3});
}

BOOST_AUTO_TEST_CASE(multi_head_self_attention) {
  nn::MultiHeadSelfAttention a(8, 2);
  check_module(a, [&](const Tensor& x) { return a(x); }, {2, 5, 8});
}

BOOST_AUTO_TEST_CASE(mlp) {
  nn::Mlp m(4, 8, 3);
  check_module(m, [&](const Tensor& x) { return m(x); }, {2, 3, 4});
}

BOOST_AUTO_TEST_CASE(encoder_block_pre_and_post_norm) {
  for (nn::NormPlacement p : {nn::NormPlacement::pre, nn::NormPlacement::post}) {
    nn::EncoderBlock b(8, 2, 12, {.norm = p});
    check_module(b, [&](const Tensor& x) { return b(x); }, {2, 4, 8});
  }
}

BOOST_AUTO_TEST_CASE(patch_embedding) {
  nn::PatchEmbedding pe(4, 6, 2, 3, 5);
  check_module(pe, [&](const Tensor& x) { return pe(x); }, {2, 3, 4, 6});
}

BOOST_AUTO_TEST_CASE(self_attention_2d) {
  nn::SelfAttention2d s(4, {.qk_channels = 2});
  check_module(s, [&](const Tensor& x) { return s(x); }, {2, 4, 3, 2});
}

BOOST_AUTO_TEST_CASE(word_region_attention) {
  nn::WordRegionAttention w(3, 4);
  const Tensor words = input({2, 3, 5}, 9);
  const Tensor mask = from_vector<double>({0, 0, 0, 1, 1, 0, 0, 0, 0, 0}, {2, 5});
  check_module(w, [&](const Tensor& regions) {
    const auto out = w.forward(regions, words, mask);
    return out.context + sum(out.attention * 3.0);
  }, {2, 4, 6});
  // The words' gradient too.
  w.to(DType::f64);
  test::check_gradients([&](const std::vector<Tensor>& in) { return w.forward(in[0], in[1], mask).context; },
                        {input({2, 4, 6}, 1), input({2, 3, 5}, 2)});
}

BOOST_AUTO_TEST_CASE(masked_self_attention) {
  nn::MultiHeadSelfAttention a(8, 2);
  // Sample 1 pads its last two tokens; with the causal mask, query 0 of a sample whose first
  // token is padding has no key left (sample 2): its output is the projection's bias only.
  const Tensor padding = from_vector<double>({0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0}, {3, 5});
  for (const bool causal : {false, true})
    BOOST_TEST_CONTEXT("causal " << causal) {
      check_module(a, [&](const Tensor& x) { return a.forward(x, {.key_padding = padding, .causal = causal}); },
                   {3, 5, 8});
    }
}

BOOST_AUTO_TEST_CASE(a_query_with_every_key_masked_attends_to_nothing) {
  const Tensor qkv = input({2, 3, 6}, 3);
  const Tensor all_padded = from_vector<double>({1, 1, 1, 0, 0, 0}, {2, 3});
  const Tensor out = self_attention(qkv, 2, 0.5, {.key_padding_mask = all_padded});
  BOOST_TEST(sum(abs(slice(out, 0, 0, 1))).item() == 0.0);
  // The other sample is untouched by the first one's mask.
  test::check_close(slice(out, 0, 1, 2), slice(self_attention(qkv, 2, 0.5), 0, 1, 2), 1e-12, 0);
  BOOST_CHECK_THROW(self_attention(qkv, 2, 0.5, {.key_padding_mask = zeros({2, 4})}), ShapeError);
}

BOOST_AUTO_TEST_CASE(rms_norm) {
  nn::RMSNorm n(6, 1e-3);
  check_module(n, [&](const Tensor& x) { return n(x); }, {2, 3, 6});
}

BOOST_AUTO_TEST_CASE(batch_norm_2d_in_training_and_eval) {
  for (const bool affine : {true, false}) {
    nn::BatchNorm2d bn(3, {.affine = affine});
    check_module(bn, [&](const Tensor& x) { return bn(x); }, {4, 3, 2, 3});
    bn.eval();
    check_module(bn, [&](const Tensor& x) { return bn(x); }, {4, 3, 2, 3});
  }
}

BOOST_AUTO_TEST_CASE(pooling_layers) {
  // Distinct values keep max pooling away from ties (its kink).
  const Tensor x = reshape(arange(2 * 3 * 6 * 6).to(DType::f64), {2, 3, 6, 6});
  Generator g(7);
  const Tensor shuffled = index_select(x.reshape({-1}), 0, from_vector<std::int64_t>(
      [&] {
        std::vector<std::int64_t> order(216);
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.end(), std::mt19937_64(11));
        return order;
      }(), {216})).reshape({2, 3, 6, 6}) * 0.01;
  nn::MaxPool2d max(3, {.stride = 2, .padding = 1});
  test::check_gradients([&](const std::vector<Tensor>& in) { return max(in[0]); },
                        {shuffled.detach().set_requires_grad()});
  for (const bool count_pad : {true, false}) {
    nn::AvgPool2d avg(3, {.stride = 2, .padding = 1, .count_include_pad = count_pad});
    check_module(avg, [&](const Tensor& in) { return avg(in); }, {2, 3, 6, 5});
  }
  nn::GlobalAvgPool2d gap;
  check_module(gap, [&](const Tensor& in) { return gap(in); }, {2, 3, 4, 5});
  BOOST_TEST((nn::MaxPool2d(2)(zeros({1, 1, 6, 7})).shape() == Shape{1, 1, 3, 3}));  // stride = kernel
}

BOOST_AUTO_TEST_CASE(embedding) {
  nn::Embedding e(5, 4);
  e.to(DType::f64);
  const Tensor ids = from_vector<std::int64_t>({0, 3, 3, 4, 1, 0}, {2, 3});  // repeats accumulate
  BOOST_TEST((e(ids).shape() == Shape{2, 3, 4}));
  test::check_gradients([&](const std::vector<Tensor>&) { return e(ids); }, {e.weight});
  BOOST_CHECK_THROW(e(from_vector<std::int64_t>({5}, {1})), ShapeError);
  BOOST_CHECK_THROW(e(zeros({2})), DTypeError);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(layers)

BOOST_AUTO_TEST_CASE(patch_embedding_equals_strided_convolution) {
  nn::PatchEmbedding pe(8, 12, 4, 3, 6);
  const Tensor x = randn({2, 3, 8, 12});
  const Tensor conv = conv2d(x, pe.proj.weight, pe.proj.bias, {.stride_h = 4, .stride_w = 4});  // (2, 6, 2, 3)
  const Tensor expected = conv.reshape({2, 6, 6}).transpose(1, 2);
  check_close(pe(x), expected, 1e-5, 1e-5);
}

BOOST_AUTO_TEST_CASE(attention_weights_are_distributions) {
  nn::MultiHeadSelfAttention a(8, 4);
  const auto [y, w] = a.forward_with_weights(randn({3, 5, 8}));
  BOOST_TEST((y.shape() == Shape{3, 5, 8}));
  BOOST_TEST((w.shape() == Shape{3, 4, 5, 5}));
  check_close(sum(w, {-1}), ones({3, 4, 5}), 1e-5, 1e-6);
  BOOST_TEST(a.scale == 1.0 / std::sqrt(2.0));
  BOOST_CHECK_THROW(nn::MultiHeadSelfAttention(10, 4), ShapeError);
}

BOOST_AUTO_TEST_CASE(pre_and_post_norm_blocks_compute_their_formulas) {
  const Tensor x = randn({2, 3, 8});
  nn::EncoderBlock pre(8, 2, 16, {.norm = nn::NormPlacement::pre});
  pre.eval();
  Tensor h = x + pre.attn(pre.norm1(x));
  check_close(pre(x), h + pre.mlp(pre.norm2(h)), 1e-6, 1e-6);
  nn::EncoderBlock post(8, 2, 16, {.norm = nn::NormPlacement::post});
  post.eval();
  h = post.norm1(x + post.attn(x));
  check_close(post(x), post.norm2(h + post.mlp(h)), 1e-6, 1e-6);
}

BOOST_AUTO_TEST_CASE(drop_path_drops_whole_samples) {
  Generator gen(3);
  nn::DropPath d(0.5, &gen);
  const Tensor y = d(ones({400, 2, 3}));
  const std::vector<float> v = y.to_vector<float>();
  int dropped = 0;
  for (int s = 0; s < 400; ++s) {
    const float first = v[s * 6];
    BOOST_TEST((first == 0.0f || first == 2.0f));
    for (int k = 1; k < 6; ++k) BOOST_TEST(v[s * 6 + k] == first);
    dropped += first == 0.0f;
  }
  BOOST_TEST(std::abs(dropped - 200) < 40);  // 4 sigma
  d.eval();
  BOOST_TEST(d(y).same(y));
}

BOOST_AUTO_TEST_CASE(sincos_codes) {
  const std::vector<float> c = nn::sincos_position_embedding(2, 3, 8).to_vector<float>();
  // Patch (row 1, column 2): quarter 2, frequencies 1 and 0.01.
  const float* p = c.data() + (1 * 3 + 2) * 8;
  BOOST_TEST(p[0] == std::sin(1.0f), boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(p[1] == std::sin(0.01f), boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(p[2] == std::cos(1.0f), boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(p[4] == std::sin(2.0f), boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(p[7] == std::cos(0.02f), boost::test_tools::tolerance(1e-6f));
  BOOST_CHECK_THROW(nn::sincos_position_embedding(2, 2, 6), ShapeError);
}

BOOST_AUTO_TEST_CASE(sagan_on_a_hand_computed_example) {
  // 3 channels, 3x3 image, one query/key channel. Weights chosen so the numbers are easy:
  // query = x_0 (channel 0), key = x_1, value = x (identity), gamma = 0.5.
  nn::SelfAttention2d s(3, {.qk_channels = 1});
  BOOST_TEST(s.gamma.item() == 0.0);  // starts as the identity
  const Tensor x = from_vector<double>({0, 1, 0, 1, 0, 1, 0, 1, 0,     // channel 0
                                        1, 0, 0, 0, 1, 0, 0, 0, 1,     // channel 1
                                        1, 2, 3, 4, 5, 6, 7, 8, 9},    // channel 2
                                       {1, 3, 3, 3});
  s.to(DType::f64);
  BOOST_TEST(allclose(s(x), x, 0, 0));  // gamma 0: output = input
  s.query.weight.copy_(from_vector<double>({1, 0, 0}, {1, 3, 1, 1}));
  s.key.weight.copy_(from_vector<double>({0, 1, 0}, {1, 3, 1, 1}));
  s.value.weight.copy_(from_vector<double>({1, 0, 0, 0, 1, 0, 0, 0, 1}, {3, 3, 1, 1}));
  for (nn::Conv2d* c : {&s.query, &s.key, &s.value}) c->bias.fill_(0.0);
  s.gamma.fill_(0.5);
  const auto [y, attn] = s.forward_with_attention(x);
  // Query i's score against key j is q_i * k_j: q is 0 or 1 and k is 1 at positions 0, 4, 8.
  // q_i = 0: uniform weights 1/9. q_i = 1: weight e/(3e + 6) at keys 0, 4, 8, 1/(3e + 6) elsewhere.
  const double e = std::exp(1.0), hi = e / (3 * e + 6), lo = 1 / (3 * e + 6);
  const std::vector<double> a = attn.to_vector<double>();
  BOOST_TEST(a[0 * 9 + 0] == 1.0 / 9, boost::test_tools::tolerance(1e-12));  // query 0 has q = 0
  BOOST_TEST(a[1 * 9 + 4] == hi, boost::test_tools::tolerance(1e-12));       // query 1 has q = 1
  BOOST_TEST(a[1 * 9 + 5] == lo, boost::test_tools::tolerance(1e-12));
  // Output channel 2 at position 1: 2 + 0.5 * (hi * (1 + 5 + 9) + lo * (2 + 3 + 4 + 6 + 7 + 8)).
  const std::vector<double> out = y.to_vector<double>();
  BOOST_TEST(out[2 * 9 + 1] == 2 + 0.5 * (hi * 15 + lo * 30), boost::test_tools::tolerance(1e-12));
  // Position 0 (q = 0): the mean of channel 2 is 5.
  BOOST_TEST(out[2 * 9 + 0] == 1 + 0.5 * 5, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(attngan_on_a_hand_computed_example) {
  // 4 regions of width 2, 4 words of width 2, identity word projection; word 3 is padding.
  nn::WordRegionAttention w(2, 2);
  w.to(DType::f64);
  w.word_proj.weight.copy_(from_vector<double>({1, 0, 0, 1}, {2, 2}));
  // regions (1, 2, 4): region n has features r_n; words (1, 2, 4): word t has e_t.
  const Tensor regions = from_vector<double>({1, 0, 0, 2,  0, 1, 0, 0}, {1, 2, 4});  // r = (1,0),(0,1),(0,0),(2,0)
  const Tensor words = from_vector<double>({1, 0, 1, 5,  0, 1, 1, 5}, {1, 2, 4});    // e = (1,0),(0,1),(1,1),(5,5)
  const Tensor mask = from_vector<double>({0, 0, 0, 1}, {1, 4});
  const auto out = w.forward(regions, words, mask);
  const std::vector<double> a = out.attention.to_vector<double>();  // (1, 4 regions, 4 words)
  const double e = std::exp(1.0), e2 = std::exp(2.0);
  // Region 0 (1,0): scores (1, 0, 1, masked) -> (e, 1, e) / (2e + 1).
  BOOST_TEST(a[0] == e / (2 * e + 1), boost::test_tools::tolerance(1e-12));
  BOOST_TEST(a[1] == 1 / (2 * e + 1), boost::test_tools::tolerance(1e-12));
  BOOST_TEST(a[3] == 0.0);
  // Region 2 (0,0): uniform over the 3 real words.
  BOOST_TEST(a[2 * 4 + 0] == 1.0 / 3, boost::test_tools::tolerance(1e-12));
  // Region 3 (2,0): scores (2, 0, 2) -> (e^2, 1, e^2) / (2e^2 + 1).
  BOOST_TEST(a[3 * 4 + 2] == e2 / (2 * e2 + 1), boost::test_tools::tolerance(1e-12));
  // Context of region 0: sum_t a_t e_t = (e + e, 1 + e) / (2e + 1); context is (1, 2, 4).
  const std::vector<double> c = out.context.to_vector<double>();
  BOOST_TEST(c[0 * 4 + 0] == 2 * e / (2 * e + 1), boost::test_tools::tolerance(1e-12));
  BOOST_TEST(c[1 * 4 + 0] == (1 + e) / (2 * e + 1), boost::test_tools::tolerance(1e-12));
  BOOST_TEST(c[0 * 4 + 2] == 2.0 / 3, boost::test_tools::tolerance(1e-12));
  BOOST_CHECK_THROW(w.forward(regions, words, ones({1, 4}, {.dtype = DType::f64})), ShapeError);  // all masked
  BOOST_CHECK_THROW(w.forward(regions.reshape({1, 4, 2}), words), ShapeError);
}

BOOST_AUTO_TEST_SUITE_END()

// ---------------------------------------------------------------- golden values from PyTorch

BOOST_AUTO_TEST_SUITE(golden_layers)

namespace {

// tests/fixtures/make_layers_golden.py wrote these.
const io::TensorMap& layers_golden() {
  static const io::SafetensorsFile f =
      io::load_safetensors(std::string(TESSERA_SOURCE_DIR) + "/tests/fixtures/layers_golden.safetensors");
  return f.tensors;
}

// The fixture's CNN: indices as PyTorch's nn.Sequential numbers them.
nn::Sequential golden_cnn() {
  nn::Sequential s;
  s.push_back(nn::Conv2d(2, 4, 3, {.padding = 1}));
  s.push_back(nn::BatchNorm2d(4));
  s.push_back(nn::ReLU());
  s.push_back(nn::MaxPool2d(2));
  s.push_back(nn::Conv2d(4, 4, 3, {.padding = 1}));
  s.push_back(nn::BatchNorm2d(4));
  s.push_back(nn::ReLU());
  s.push_back(nn::AvgPool2d(3, {.stride = 1, .padding = 1, .count_include_pad = false}));
  s.push_back(nn::GlobalAvgPool2d());
  s.push_back(nn::Linear(4, 3));
  return s;
}

struct GoldenTokens : nn::Module {
  GoldenTokens()
      : embed(register_module("embed", nn::Embedding(7, 8))),
        norm(register_module("norm", nn::RMSNorm(8))),
        attn(register_module("attn", nn::MultiHeadSelfAttention(8, 2))),
        head(register_module("head", nn::Linear(8, 3))) {}
  std::string type_name() const override { return "GoldenTokens"; }
  Tensor forward(const Tensor& tokens, const Tensor& padding) {
    return head(mean(attn.forward(norm(embed(tokens)), {.key_padding = padding, .causal = true}), {1}));
  }
  nn::Embedding& embed;
  nn::RMSNorm& norm;
  nn::MultiHeadSelfAttention& attn;
  nn::Linear& head;
};

void load_params(nn::Module& m, const std::string& prefix, DType dtype) {
  m.to(dtype);
  nn::NamedTensors state;
  for (const auto& [name, t] : m.state_dict())
    state.emplace_back(name, layers_golden().count(prefix + name) ? layers_golden().at(prefix + name) : t);
  m.load_state_dict(state);
}

void check_grads(const nn::Module& m, const std::string& prefix, double rtol, double atol) {
  for (const auto& [name, p] : m.named_parameters())
    BOOST_TEST_CONTEXT("gradient of " << name) {
      test::check_close(p.grad(), layers_golden().at(prefix + name), rtol, atol);
    }
}

}  // namespace

BOOST_AUTO_TEST_CASE(cnn_with_batch_norm_and_pooling_matches_pytorch) {
  const auto& g = layers_golden();
  for (const auto [dtype, rtol, atol] : {std::tuple{DType::f64, 1e-5, 1e-10}, {DType::f32, 2e-4, 1e-5}})
    BOOST_TEST_CONTEXT(dtype_name(dtype)) {
      nn::Sequential m = golden_cnn();
      load_params(m, "cnn.param.", dtype);
      const Tensor x = g.at("cnn.input").to(dtype);
      const Tensor logits = m(x);
      const Tensor loss = cross_entropy(logits, g.at("cnn.labels"));
      test::check_close(logits, g.at("cnn.logits"), rtol, atol);
      test::check_close(loss.reshape({1}), g.at("cnn.loss"), rtol, atol);
      backward(loss);
      check_grads(m, "cnn.grad.", rtol, atol);
      // The running statistics after that step (unbiased variance, momentum 0.1) ...
      for (const auto& [name, b] : m.named_buffers())
        BOOST_TEST_CONTEXT("buffer " << name) { test::check_close(b, g.at("cnn.after." + name), rtol, atol); }
      // ... are what eval mode normalises with.
      m.eval();
      test::check_close(m(x), g.at("cnn.eval_logits"), rtol, atol);
    }
}

BOOST_AUTO_TEST_CASE(embedding_rms_norm_and_masked_attention_match_pytorch) {
  const auto& g = layers_golden();
  for (const auto [dtype, rtol, atol] : {std::tuple{DType::f64, 1e-5, 1e-10}, {DType::f32, 2e-4, 1e-5}})
    BOOST_TEST_CONTEXT(dtype_name(dtype)) {
      GoldenTokens m;
      load_params(m, "tokens.param.", dtype);
      const Tensor logits = m.forward(g.at("tokens.input"), g.at("tokens.padding"));
      const Tensor loss = cross_entropy(logits, g.at("tokens.labels"));
      test::check_close(logits, g.at("tokens.logits"), rtol, atol);
      test::check_close(loss.reshape({1}), g.at("tokens.loss"), rtol, atol);
      backward(loss);
      check_grads(m, "tokens.grad.", rtol, atol);
    }
}

BOOST_AUTO_TEST_SUITE_END()

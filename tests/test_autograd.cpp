// The tape: gradient flow, accumulation, NoGradGuard, detach, freeing, and its errors.
#include "support/test_support.h"

using namespace tessera;

BOOST_AUTO_TEST_SUITE(autograd)

BOOST_AUTO_TEST_CASE(gradients_flow_to_leaves) {
  Tensor x = from_vector<double>({1.0, 2.0, 3.0}).set_requires_grad();
  Tensor w = from_vector<double>({0.5, -1.0, 2.0}).set_requires_grad();
  Tensor loss = sum(x * w);  // d/dx = w, d/dw = x
  BOOST_TEST(loss.requires_grad());
  BOOST_TEST(!loss.is_leaf());
  backward(loss);
  BOOST_TEST((x.grad().to_vector<double>() == std::vector<double>{0.5, -1.0, 2.0}));
  BOOST_TEST((w.grad().to_vector<double>() == std::vector<double>{1.0, 2.0, 3.0}));
  BOOST_TEST(!loss.grad().defined());  // non-leaf gradients are not kept
}

BOOST_AUTO_TEST_CASE(gradients_accumulate_across_uses_and_calls_until_zero_grad) {
  Tensor x = from_vector<double>({2.0}).set_requires_grad();
  backward(sum(x * x + x));  // 2x + 1 = 5
  BOOST_TEST(x.grad().item() == 5.0);
  backward(sum(x * 3.0));    // accumulates: 5 + 3
  BOOST_TEST(x.grad().item() == 8.0);
  x.zero_grad();
  BOOST_TEST(!x.grad().defined());
  backward(sum(x * 3.0));
  BOOST_TEST(x.grad().item() == 3.0);
}

BOOST_AUTO_TEST_CASE(explicit_output_gradient) {
  Tensor x = from_vector<double>({1.0, 2.0}).set_requires_grad();
  Tensor y = x * x;
  backward(y, from_vector<double>({10.0, 100.0}));
  BOOST_TEST((x.grad().to_vector<double>() == std::vector<double>{20.0, 400.0}));
}

BOOST_AUTO_TEST_CASE(no_grad_guard_and_detach_stop_recording) {
  Tensor x = ones({3}, {.requires_grad = true});
  const std::size_t before = tape_size();
  {
    NoGradGuard guard;
    BOOST_TEST(!grad_enabled());
    Tensor y = x * 2.0;
    BOOST_TEST(!y.requires_grad());
  }
  BOOST_TEST(grad_enabled());
  BOOST_TEST(tape_size() == before);
  Tensor d = x.detach();
  BOOST_TEST(!d.requires_grad());
  Tensor y = sum(x.detach() * 2.0 + x);
  backward(y);
  for (float g : x.grad().to_vector<float>()) BOOST_TEST(g == 1.0f);
}

BOOST_AUTO_TEST_CASE(tape_is_cleared_and_activations_freed_after_backward) {
  clear_tape();
  Tensor x = randn({256, 256}, {.requires_grad = true});
  std::weak_ptr<TensorImpl> hidden;
  {
    Tensor h = relu(matmul(x, x));
    hidden = h.impl_ptr();
    Tensor loss = sum(h);
    BOOST_TEST(tape_size() > 0u);
    backward(loss);
  }
  BOOST_TEST(tape_size() == 0u);
  BOOST_TEST(hidden.expired());  // no node holds the activation any more
}

BOOST_AUTO_TEST_CASE(abandoned_graphs_do_not_grow_the_tape) {
  clear_tape();
  Tensor w = randn({8, 8}, {.requires_grad = true});
  for (int i = 0; i < 20000; ++i) {
    Tensor y = tanh(matmul(w, w));  // evaluation without NoGradGuard, result dropped
  }
  BOOST_TEST(tape_size() < 10000u);
}

BOOST_AUTO_TEST_CASE(retain_grad_keeps_an_intermediate_gradient) {
  Tensor x = from_vector<double>({3.0}).set_requires_grad();
  Tensor h = x * x;
  h.retain_grad();
  backward(sum(h * 2.0));
  BOOST_TEST(h.grad().item() == 2.0);
  BOOST_TEST(x.grad().item() == 12.0);
}

BOOST_AUTO_TEST_CASE(backward_errors_are_clear) {
  Tensor x = ones({2, 3}, {.requires_grad = true});
  Tensor y = x * 2.0;
  BOOST_CHECK_EXCEPTION(backward(y), AutogradError, [](const AutogradError& e) {
    return std::string(e.what()).find("not a scalar") != std::string::npos;
  });
  BOOST_CHECK_EXCEPTION(backward(y, ones({3, 2})), ShapeError, [](const ShapeError& e) {
    return std::string(e.what()).find("(3,2)") != std::string::npos;
  });
  BOOST_CHECK_THROW(backward(y, ones({2, 3}, {.dtype = f64})), DTypeError);
  BOOST_CHECK_EXCEPTION(backward(sum(ones({2}))), AutogradError, [](const AutogradError& e) {
    return std::string(e.what()).find("does not require a gradient") != std::string::npos;
  });
  Tensor loss = sum(y);
  backward(loss);
  BOOST_CHECK_EXCEPTION(backward(loss), AutogradError, [](const AutogradError& e) {
    return std::string(e.what()).find("already") != std::string::npos;
  });
  // A tensor whose graph was consumed cannot carry gradients into a new graph.
  BOOST_CHECK_THROW(backward(sum(y * 3.0)), AutogradError);
  BOOST_CHECK_THROW(y.set_requires_grad(false), AutogradError);  // not a leaf
}

BOOST_AUTO_TEST_CASE(unrelated_graphs_survive_another_backward) {
  Tensor a = ones({2}, {.requires_grad = true});
  Tensor b = ones({2}, {.requires_grad = true});
  Tensor la = sum(a * 2.0);
  Tensor lb = sum(b * 3.0);
  backward(la);
  backward(lb);  // lb's nodes were not used by la's backward
  BOOST_TEST(b.grad().to_vector<float>()[0] == 3.0f);
}

BOOST_AUTO_TEST_SUITE_END()

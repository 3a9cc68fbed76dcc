// The README tells the truth: its code example is the one the tests build and run.
#include <fstream>
#include <sstream>

#include "support/test_support.h"

namespace {

std::string read(const std::string& relative) {
  std::ifstream in(std::string(TESSERA_SOURCE_DIR) + "/" + relative);
  BOOST_TEST_REQUIRE(in.good(), "cannot read " << relative);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(docs)

BOOST_AUTO_TEST_CASE(readme_shows_the_tested_example) {
  const std::string source = read("examples/vit_training_step.cpp");
  const auto begin = source.find("// README-BEGIN\n"), end = source.find("// README-END");
  BOOST_TEST_REQUIRE((begin != std::string::npos && end != std::string::npos));
  const std::string code = source.substr(begin + 16, end - begin - 16);
  BOOST_TEST(read("README.md").find(code) != std::string::npos,
             "README.md does not contain examples/vit_training_step.cpp between its README markers");
}

BOOST_AUTO_TEST_SUITE_END()

// The README tells the truth: its code example is the one the tests build and run, and its
// test command is the one CI runs.
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

BOOST_AUTO_TEST_CASE(ci_runs_the_readme_test_command) {
  const std::string readme = read("README.md");
  const auto heading = readme.find("\n# 2. ");
  BOOST_TEST_REQUIRE(heading != std::string::npos, "README.md has no quick-start command 2");
  const auto begin = readme.find('\n', heading + 1) + 1;
  const std::string command = readme.substr(begin, readme.find('\n', begin) - begin);
  const std::string ci = read(".ci/run");
  BOOST_TEST(ci.ends_with("\n" + command + "\n"), ".ci/run does not end with README command 2: " << command);
}

BOOST_AUTO_TEST_SUITE_END()

#define BOOST_TEST_MODULE tessera
#include <boost/test/unit_test.hpp>

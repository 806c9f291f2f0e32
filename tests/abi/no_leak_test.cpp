// The umbrella header must not bring any dependency's headers with it. This file is compiled with
// the include paths of DCMTK, nlohmann-json and Catch2 available (the test binary links them), so
// an accidental include would succeed and define these macros.
#include <medinfer/medinfer.hpp>

#if defined(TORCH_API) || defined(C10_API) || defined(AT_ASSERT)
#error "a public header includes LibTorch"
#endif
#if defined(CV_VERSION) || defined(CV_VERSION_MAJOR)
#error "a public header includes OpenCV"
#endif
#if defined(PACKAGE_VERSION) || defined(DCMTK_LOG4CPLUS_VERSION) || defined(OFFIS_DCMTK_VERSION_STRING) || defined(INCLUDE_CSTDLIB)
#error "a public header includes DCMTK"
#endif
#if defined(FMT_VERSION)
#error "a public header includes fmt"
#endif
#if defined(NLOHMANN_JSON_VERSION_MAJOR)
#error "a public header includes nlohmann-json"
#endif
#if defined(OPENSSL_VERSION_NUMBER)
#error "a public header includes OpenSSL"
#endif

#include <catch2/catch.hpp>

TEST_CASE("the umbrella header pulls in no dependency (checked at compile time)", "[abi]") {
  CHECK(std::string(medinfer::version()) == MEDINFER_VERSION_STRING);
}

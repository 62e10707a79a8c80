// GPU tests: skipped cleanly on machines without a CUDA device, run on the H200.
#include <nlohmann/json.hpp>

#include "core/runtime.h"
#include "ops/glu.h"
#include "ops/ref/ref.h"
#include "support/test_env.h"

using namespace sanastream;

#define REQUIRE_CUDA() \
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device"

// The chain: one kernel of our own and one ATen CUDA op, each against the CPU.
TEST(GpuSmoke, OwnKernelAndAtenOpMatchTheCpu) {
  REQUIRE_CUDA();
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    at::Tensor x = at::randn({6, 2 * 37, 5, 7}).to(dtype);
    at::Tensor cpu = ops::ref::silu_glu(x.to(at::kFloat));
    at::Tensor gpu = ops::silu_glu(x.to(at::kCUDA)).to(at::kCPU, at::kFloat);
    const double tol = dtype == at::kFloat ? 1e-5 : 1.6e-2;
    EXPECT_TRUE(at::allclose(gpu, cpu, tol, tol)) << c10::toString(dtype);
  }
  make_runtime("cuda", "fp32");  // TF32 off
  at::Tensor a = at::randn({257, 129}, at::kDouble), b = at::randn({129, 65}, at::kDouble);
  at::Tensor want = at::matmul(a, b);
  at::Tensor got = at::matmul(a.to(at::kFloat).cuda(), b.to(at::kFloat).cuda()).cpu().to(at::kDouble);
  EXPECT_LT((got - want).norm().item<double>() / want.norm().item<double>(), 1e-6);
}

class GoldenCuda : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenCuda, DitSetsPass) {
  REQUIRE_CUDA();
  REQUIRE_GOLDEN(test::golden_root() + "/dit_stream_small/config.json");
  auto r = test::run_cli({"golden-check", test::golden_root(), "--device", "cuda", "--dtype", GetParam(), "--require", "dit"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

INSTANTIATE_TEST_SUITE_P(Dtypes, GoldenCuda, ::testing::Values("fp32", "bf16"));

// Weight encodings against gguf-py (fixtures from tools/make_quant_fixtures.py):
//  * ref::dequantize_row and cpu::dequantize_row (every ISA this CPU has) decode random valid
//    blocks to exactly gguf-py's f32 values (bit for bit: both evaluate (d*sc)*q - dmin*m with
//    each product rounded to f32, so there is nothing to round differently);
//  * ref::quantize_row produces gguf-py's bytes exactly for the types gguf-py quantizes;
//  * quantize -> dequantize round trips stay within a per-type RMS error bound.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/ops_cpu.h"
#include "kernels/ref/ops_ref.h"
#include "tests/test_util.h"

namespace omni {
namespace {

struct Fixture {
  uint32_t type = 0;
  uint32_t n = 0;
  std::vector<uint8_t> bytes;
  std::vector<float> values;  // decode: gguf-py's output; encode: the input
};

// Reads "<name>.bin" (decode: bytes then f32) or "<name>_quant.bin" (encode: f32 then bytes).
bool load_fixture(const std::string& file, bool encode, Fixture* fx) {
  const std::string path = std::string(OMNIRT_SOURCE_DIR) + "/tests/data/quant/" + file;
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return false;
  char magic[4];
  uint32_t hdr[3];
  bool ok = std::fread(magic, 1, 4, f) == 4 && std::fread(hdr, 4, 3, f) == 3 &&
            std::memcmp(magic, encode ? "OQQU" : "OQDQ", 4) == 0;
  if (ok) {
    fx->type = hdr[0];
    fx->n = hdr[1];
    fx->bytes.resize(hdr[2]);
    fx->values.resize(hdr[1]);
    if (encode) {
      ok = std::fread(fx->values.data(), 4, fx->n, f) == fx->n &&
           std::fread(fx->bytes.data(), 1, fx->bytes.size(), f) == fx->bytes.size();
    } else {
      ok = std::fread(fx->bytes.data(), 1, fx->bytes.size(), f) == fx->bytes.size() &&
           std::fread(fx->values.data(), 4, fx->n, f) == fx->n;
    }
  }
  std::fclose(f);
  return ok;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

// Counts elements whose bit patterns differ; reports the first few.
int count_mismatches(const float* got, const float* want, int64_t n, const std::string& what) {
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (bits(got[i]) != bits(want[i])) {
      if (++bad <= 3) ADD_FAILURE() << what << " element " << i << ": got " << got[i] << " want " << want[i];
    }
  }
  return bad;
}

const char* kDecodeFixtures[] = {"q8_0", "q4_0", "q5_0", "q4_k", "q5_k", "q6_k", "f16", "bf16"};

TEST(QuantTest, DequantizeMatchesGgufPyBitExact) {
  const auto isas = test::cpu_isas();
  for (const char* name : kDecodeFixtures) {
    Fixture fx;
    ASSERT_TRUE(load_fixture(std::string(name) + ".bin", false, &fx)) << name;
    const DType t = static_cast<DType>(fx.type);
    ASSERT_EQ(dtype_row_bytes(t, fx.n), static_cast<int64_t>(fx.bytes.size())) << name;
    std::vector<float> out(fx.n, std::nanf(""));
    ref::dequantize_row(t, fx.bytes.data(), out.data(), fx.n);
    EXPECT_EQ(count_mismatches(out.data(), fx.values.data(), fx.n, std::string("ref ") + name), 0);
    for (CpuIsa isa : isas) {
      ASSERT_TRUE(cpu::set_isa(isa));
      std::fill(out.begin(), out.end(), std::nanf(""));
      cpu::dequantize_row(t, fx.bytes.data(), out.data(), fx.n);
      EXPECT_EQ(count_mismatches(out.data(), fx.values.data(), fx.n,
                                 std::string(cpu_isa_name(isa)) + " " + name), 0);
    }
  }
  cpu::set_isa(isas.back());
}

TEST(QuantTest, QuantizeMatchesGgufPyBytes) {
  for (const char* name : {"q8_0", "q4_0", "q5_0", "f16", "bf16"}) {
    Fixture fx;
    ASSERT_TRUE(load_fixture(std::string(name) + "_quant.bin", true, &fx)) << name;
    const DType t = static_cast<DType>(fx.type);
    std::vector<uint8_t> out(fx.bytes.size() + 16, 0xAB);
    const int64_t written = ref::quantize_row(t, fx.values.data(), out.data(), fx.n);
    ASSERT_EQ(written, static_cast<int64_t>(fx.bytes.size())) << name;
    int bad = 0;
    for (size_t i = 0; i < fx.bytes.size(); ++i)
      if (out[i] != fx.bytes[i] && ++bad <= 3)
        ADD_FAILURE() << name << " byte " << i << ": got " << int(out[i]) << " want " << int(fx.bytes[i]);
    EXPECT_EQ(bad, 0) << name;
    EXPECT_EQ(out[fx.bytes.size()], 0xAB) << name << ": wrote past the returned size";
  }
}

// RMS(dequant(quant(x)) - x) / RMS(x) on Gaussian data, with sub-blocks of different scales.
// Bounds: ~1.4x what our quantizers measure (in parentheses), so a regression in rounding or
// packing fails while the grids' inherent error passes.
TEST(QuantTest, RoundTripErrorBounds) {
  struct Case {
    DType t;
    double bound;
  } cases[] = {
      {DType::kQ8_0, 0.0075},  // (0.0054) absmax/127 grid
      {DType::kQ4_0, 0.12},    // (0.085) max/-8 grid
      {DType::kQ5_0, 0.06},    // (0.042)
      {DType::kQ4_K, 0.11},    // (0.078) affine 4-bit grid per 32, 6-bit scales and mins
      {DType::kQ5_K, 0.055},   // (0.038)
      {DType::kQ6_K, 0.027},   // (0.019) symmetric grid per 16, 8-bit scales
      {DType::kF16, 3e-4},     // (2.1e-4) 11-bit significand
      {DType::kBF16, 2.4e-3},  // (1.65e-3) 8-bit significand
  };
  std::mt19937 rng(7);
  std::normal_distribution<float> g(0.0f, 1.0f);
  const int64_t n = 8192;
  std::vector<float> x(n), y(n);
  for (int64_t i = 0; i < n; ++i) x[i] = g(rng) * (1.0f + static_cast<float>((i / 32) % 5));
  for (const auto& c : cases) {
    std::vector<uint8_t> buf(static_cast<size_t>(dtype_row_bytes(c.t, n)));
    ASSERT_EQ(ref::quantize_row(c.t, x.data(), buf.data(), n), static_cast<int64_t>(buf.size()));
    ref::dequantize_row(c.t, buf.data(), y.data(), n);
    double err = 0, ref_ss = 0;
    for (int64_t i = 0; i < n; ++i) {
      err += (static_cast<double>(y[i]) - x[i]) * (static_cast<double>(y[i]) - x[i]);
      ref_ss += static_cast<double>(x[i]) * x[i];
    }
    const double rel = std::sqrt(err / ref_ss);
    EXPECT_LT(rel, c.bound) << dtype_name(c.t);
    std::printf("[ roundtrip ] %-5s rel RMS error %.5f (bound %.5f)\n", dtype_name(c.t), rel, c.bound);
  }
}

TEST(QuantTest, ZeroInputRoundTripsToZero) {
  for (DType t : {DType::kQ8_0, DType::kQ4_0, DType::kQ5_0, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K}) {
    const int64_t n = 512;
    std::vector<float> x(n, 0.0f), y(n, 1.0f);
    std::vector<uint8_t> buf(static_cast<size_t>(dtype_row_bytes(t, n)));
    ref::quantize_row(t, x.data(), buf.data(), n);
    ref::dequantize_row(t, buf.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(y[i], 0.0f) << dtype_name(t) << " at " << i;
  }
}

}  // namespace
}  // namespace omni

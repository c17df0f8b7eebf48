// Synthetic models: the files `omnirt model create` writes are checked against the spec written
// out by hand here (llama.cpp tensor names and shapes, metadata values), read back through the
// GGUF reader, decoded by the scalar reference kernels, and loaded by Model::load.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "kernels/ref/ops_ref.h"
#include "runtime/model/context.h"
#include "runtime/model/gguf.h"
#include "runtime/model/inspect.h"
#include "runtime/model/model.h"
#include "runtime/model/synthetic.h"
#include "tests/test_util.h"

namespace omni {
namespace {

struct ExpectedTensor {
  DType type;
  std::vector<int64_t> ne;
};

// The tiny preset's tensors, from the spec: n_embd 256, 4 heads x 64, 2 kv heads, n_ff 512,
// vocab 512; gemma3 6 layers with q/k norms and post norms, qwen2 biases and an untied head.
std::map<std::string, ExpectedTensor> expected_tiny(const std::string& arch, DType w) {
  const DType f = DType::kF32;
  std::map<std::string, ExpectedTensor> e;
  e["token_embd.weight"] = {w, {256, 512}};
  e["output_norm.weight"] = {f, {256}};
  if (arch == "qwen2") e["output.weight"] = {w, {256, 512}};
  const int layers = arch == "gemma3" ? 6 : 2;
  for (int l = 0; l < layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    e[p + "attn_norm.weight"] = {f, {256}};
    e[p + "attn_q.weight"] = {w, {256, 256}};
    e[p + "attn_k.weight"] = {w, {256, 128}};
    e[p + "attn_v.weight"] = {w, {256, 128}};
    e[p + "attn_output.weight"] = {w, {256, 256}};
    e[p + "ffn_norm.weight"] = {f, {256}};
    e[p + "ffn_gate.weight"] = {w, {256, 512}};
    e[p + "ffn_up.weight"] = {w, {256, 512}};
    e[p + "ffn_down.weight"] = {w, {512, 256}};
    if (arch == "qwen2") {
      e[p + "attn_q.bias"] = {f, {256}};
      e[p + "attn_k.bias"] = {f, {128}};
      e[p + "attn_v.bias"] = {f, {128}};
    }
    if (arch == "gemma3") {
      e[p + "attn_q_norm.weight"] = {f, {64}};
      e[p + "attn_k_norm.weight"] = {f, {64}};
      e[p + "post_attention_norm.weight"] = {f, {256}};
      e[p + "post_ffw_norm.weight"] = {f, {256}};
    }
  }
  return e;
}

std::string create(const std::string& arch, const std::string& preset, DType type, uint64_t seed,
                   const std::string& name, int threads = 2) {
  const std::string path = test::temp_path(name);
  SyntheticSpec spec{arch, preset, type, seed, threads};
  Status st = create_synthetic_model(spec, path);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return path;
}

std::vector<float> decode(const gguf::TensorInfo& t) {
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  const int64_t row_bytes = dtype_row_bytes(t.type, t.ne[0]);
  for (int64_t r = 0; r < t.n_elements() / t.ne[0]; ++r)
    ref::dequantize_row(t.type, t.data + r * row_bytes, out.data() + r * t.ne[0], t.ne[0]);
  return out;
}

void mean_std(const std::vector<float>& x, double* mean, double* stddev) {
  double s = 0, s2 = 0;
  for (float v : x) {
    s += v;
    s2 += double(v) * v;
  }
  *mean = s / double(x.size());
  *stddev = std::sqrt(s2 / double(x.size()) - *mean * *mean);
}

class SyntheticTiny : public ::testing::TestWithParam<std::tuple<std::string, DType>> {};

TEST_P(SyntheticTiny, TensorsMetadataAndStatistics) {
  const auto& [arch, type] = GetParam();
  const std::string path = create(arch, "tiny", type, 7, arch + dtype_name(type) + ".gguf");
  auto file = gguf::GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const gguf::GgufFile& f = **file;

  // Every expected tensor, nothing else, at the right shape and type.
  const auto expected = expected_tiny(arch, type);
  EXPECT_EQ(f.tensors().size(), expected.size());
  for (const auto& [name, e] : expected) {
    const gguf::TensorInfo* t = f.find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->type, e.type) << name;
    ASSERT_EQ(t->n_dims, e.ne.size()) << name;
    for (size_t i = 0; i < e.ne.size(); ++i) EXPECT_EQ(t->ne[i], e.ne[i]) << name << " dim " << i;
  }

  // Metadata.
  EXPECT_EQ(*f.get_string("general.architecture"), arch);
  EXPECT_EQ(*f.get_string("general.name"), "synthetic tiny");
  EXPECT_TRUE(*f.get_bool("omnirt.synthetic"));
  EXPECT_EQ(*f.get_u64("omnirt.synthetic.seed"), 7u);
  EXPECT_EQ(*f.get_u32(arch + ".embedding_length"), 256u);
  EXPECT_EQ(*f.get_u32(arch + ".block_count"), arch == "gemma3" ? 6u : 2u);
  EXPECT_EQ(*f.get_u32(arch + ".feed_forward_length"), 512u);
  EXPECT_EQ(*f.get_u32(arch + ".attention.head_count"), 4u);
  EXPECT_EQ(*f.get_u32(arch + ".attention.head_count_kv"), 2u);
  EXPECT_EQ(*f.get_u32(arch + ".attention.key_length"), 64u);
  EXPECT_EQ(*f.get_u32(arch + ".attention.value_length"), 64u);
  EXPECT_EQ(*f.get_u32(arch + ".rope.dimension_count"), 64u);
  EXPECT_GT(*f.get_u32(arch + ".context_length"), 0u);
  EXPECT_GT(*f.get_f32(arch + ".rope.freq_base"), 0.0f);
  EXPECT_GT(*f.get_f32(arch + ".attention.layer_norm_rms_epsilon"), 0.0f);
  EXPECT_EQ(f.find(arch + ".attention.sliding_window") != nullptr, arch == "gemma3");
  const uint32_t want_ftype = type == DType::kF32 ? 0 : type == DType::kF16 ? 1 : type == DType::kQ8_0 ? 7
                              : type == DType::kQ4_K ? 14 : type == DType::kQ6_K ? 18 : 999;
  EXPECT_EQ(*f.get_u32("general.file_type"), want_ftype);
  EXPECT_TRUE(f.get_string_array("omnirt.synthetic.fallbacks")->empty());  // 256 is whole blocks

  // Tokenizer: GPT-2 byte symbols, then control tokens, then unused ones up to the vocab size.
  EXPECT_EQ(*f.get_string("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(*f.get_string("tokenizer.ggml.pre"), "gpt2");
  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ(tokens->size(), 512u);
  EXPECT_EQ((*tokens)[0], "!");
  EXPECT_EQ((*tokens)[93], "~");
  EXPECT_EQ((*tokens)[188], "\xC4\x80");   // byte 0x00 -> U+0100
  EXPECT_EQ((*tokens)[220], "\xC4\xA0");  // space (0x20), the 33rd unprintable byte -> U+0120
  EXPECT_EQ((*tokens)[256], "<|bos|>");
  EXPECT_EQ((*tokens)[257], "<|eos|>");
  const std::string first_chat = arch == "gemma3" ? "<start_of_turn>" : arch == "qwen2" ? "<|im_start|>"
                                                                                         : "<|start_header_id|>";
  EXPECT_EQ((*tokens)[258], first_chat);
  EXPECT_EQ((*tokens)[511], "<unused_" + std::to_string(511 - (arch == "llama" ? 261 : 260)) + ">");
  auto types = f.get_i32_array("tokenizer.ggml.token_type");
  ASSERT_TRUE(types.ok());
  ASSERT_EQ(types->size(), 512u);
  EXPECT_EQ((*types)[0], 1);
  EXPECT_EQ((*types)[255], 1);
  EXPECT_EQ((*types)[256], 3);
  EXPECT_EQ((*types)[258], 3);
  EXPECT_EQ((*types)[511], 5);
  EXPECT_TRUE(f.get_string_array("tokenizer.ggml.merges")->empty());
  EXPECT_EQ(*f.get_u32("tokenizer.ggml.bos_token_id"), 256u);
  EXPECT_EQ(*f.get_u32("tokenizer.ggml.eos_token_id"), 257u);
  EXPECT_TRUE(*f.get_bool("tokenizer.ggml.add_bos_token"));

  // Values, decoded by the reference kernels: weights ~ N(0, 1/n_in), norms 1, biases N(0, 0.02).
  std::vector<float> biases;
  for (const auto& t : f.tensors()) {
    const std::vector<float> x = decode(t);
    double mean, sd;
    mean_std(x, &mean, &sd);
    if (t.name.find("norm") != std::string::npos) {
      for (float v : x) ASSERT_EQ(v, 1.0f) << t.name;
    } else if (t.name.find(".bias") != std::string::npos) {
      biases.insert(biases.end(), x.begin(), x.end());
    } else {
      const double want = 1.0 / std::sqrt(double(t.ne[0]));
      EXPECT_NEAR(sd / want, 1.0, 0.10) << t.name;
      EXPECT_NEAR(mean / want, 0.0, 0.05) << t.name;
    }
  }
  if (arch == "qwen2") {
    double mean, sd;
    mean_std(biases, &mean, &sd);
    EXPECT_NEAR(sd / 0.02, 1.0, 0.10);
  }

  // The model loader accepts it, sees the shapes, and knows the output is noise.
  auto model = Model::load(path);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  const Model& m = **model;
  EXPECT_TRUE(m.is_synthetic());
  EXPECT_EQ(std::string(arch_name(m.hparams().arch)), arch);
  EXPECT_EQ(m.hparams().n_vocab, 512);
  EXPECT_EQ(m.hparams().n_embd, 256);
  EXPECT_EQ(m.hparams().head_dim, 64);
  EXPECT_EQ(m.tokenizer().n_vocab(), 512);
  EXPECT_EQ(m.tokenizer().bos(), 256);
  EXPECT_EQ(m.tokenizer().eos(), 257);
  const ChatTemplate want_tmpl = arch == "gemma3" ? ChatTemplate::kGemma
                                 : arch == "qwen2" ? ChatTemplate::kChatML : ChatTemplate::kLlama3;
  EXPECT_EQ(m.chat_template(), want_tmpl);
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(
    AllArchs, SyntheticTiny,
    ::testing::Combine(::testing::Values("llama", "qwen2", "gemma3"),
                       ::testing::Values(DType::kF32, DType::kF16, DType::kQ8_0, DType::kQ4_K,
                                         DType::kQ6_K)),
    [](const auto& info) {
      return std::get<0>(info.param) + "_" + dtype_name(std::get<1>(info.param));
    });

TEST(Synthetic, TinyModelRunsAndGivesFiniteLogits) {
  for (const char* arch : {"llama", "qwen2", "gemma3"}) {
    const std::string path = create(arch, "tiny", DType::kQ8_0, 3, std::string("run_") + arch);
    auto model = Model::load(path);
    ASSERT_TRUE(model.ok()) << model.status().to_string();
    ContextParams cp;
    cp.n_ctx = 128;
    cp.n_threads = 2;
    auto ctx = Context::create(**model, cp);
    ASSERT_TRUE(ctx.ok()) << ctx.status().to_string();
    const std::vector<int32_t> tokens = {256, 72, 101, 108, 108, 111};
    ASSERT_TRUE((*ctx)->eval(tokens, false).ok());
    const float* logits = (*ctx)->last_logits();
    double s2 = 0;
    for (int i = 0; i < 512; ++i) {
      ASSERT_TRUE(std::isfinite(logits[i])) << arch << " logit " << i;
      s2 += double(logits[i]) * logits[i];
    }
    EXPECT_GT(s2, 0.0) << arch;  // random weights give some spread, not all zeros
    std::remove(path.c_str());
  }
}

TEST(Synthetic, SameSeedSameBytesWhateverTheThreads) {
  const std::string a = create("qwen2", "tiny", DType::kQ4_K, 11, "det_a", 1);
  const std::string b = create("qwen2", "tiny", DType::kQ4_K, 11, "det_b", 3);
  const std::string c = create("qwen2", "tiny", DType::kQ4_K, 12, "det_c", 2);
  const auto ba = test::read_file(a), bb = test::read_file(b), bc = test::read_file(c);
  ASSERT_FALSE(ba.empty());
  EXPECT_TRUE(ba == bb);
  ASSERT_EQ(ba.size(), bc.size());
  EXPECT_FALSE(ba == bc);
  // A different seed changes every matrix, not only the seed key.
  auto fa = gguf::GgufFile::open(a), fc = gguf::GgufFile::open(c);
  ASSERT_TRUE(fa.ok() && fc.ok());
  for (const auto& t : (*fa)->tensors()) {
    if (t.n_dims != 2) continue;
    const gguf::TensorInfo* u = (*fc)->find_tensor(t.name);
    ASSERT_NE(u, nullptr);
    EXPECT_NE(std::memcmp(t.data, u->data, t.n_bytes), 0) << t.name;
  }
  for (const auto& p : {a, b, c}) std::remove(p.c_str());
}

TEST(Synthetic, FallbackTypesFollowLlamaCpp) {
  EXPECT_EQ(synthetic_weight_type(DType::kQ4_K, 896), DType::kQ5_0);
  EXPECT_EQ(synthetic_weight_type(DType::kQ5_K, 640), DType::kQ5_0);
  EXPECT_EQ(synthetic_weight_type(DType::kQ6_K, 896), DType::kQ8_0);
  EXPECT_EQ(synthetic_weight_type(DType::kQ4_K, 4864), DType::kQ4_K);  // 19 x 256
  EXPECT_EQ(synthetic_weight_type(DType::kQ4_K, 1024), DType::kQ4_K);
  EXPECT_EQ(synthetic_weight_type(DType::kQ8_0, 48), DType::kF16);
  EXPECT_EQ(synthetic_weight_type(DType::kF16, 7), DType::kF16);
}

// A real shape: gemma3-270m (n_embd 640 is not a multiple of 256, so q4_K rows of 640 become
// q5_0, as in the published Q4_K_M file), read back through the reader.
TEST(Synthetic, Gemma3_270mShapesAndFallbacks) {
  const std::string path = create("", "gemma3-270m", DType::kQ4_K, 1, "g270.gguf");
  auto file = gguf::GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const gguf::GgufFile& f = **file;
  EXPECT_EQ(f.tensors().size(), 2u + 18u * 13u);  // tied: no output.weight
  EXPECT_EQ(f.find_tensor("output.weight"), nullptr);
  struct Row {
    const char* name;
    DType type;
    int64_t ne0, ne1;
  } rows[] = {
      {"token_embd.weight", DType::kQ5_0, 640, 262144},
      {"blk.17.attn_q.weight", DType::kQ5_0, 640, 1024},
      {"blk.17.attn_k.weight", DType::kQ5_0, 640, 256},
      {"blk.17.attn_output.weight", DType::kQ4_K, 1024, 640},
      {"blk.17.ffn_up.weight", DType::kQ5_0, 640, 2048},
      {"blk.17.ffn_down.weight", DType::kQ4_K, 2048, 640},
      {"blk.17.attn_q_norm.weight", DType::kF32, 256, 1},
  };
  for (const Row& r : rows) {
    const gguf::TensorInfo* t = f.find_tensor(r.name);
    ASSERT_NE(t, nullptr) << r.name;
    EXPECT_EQ(t->type, r.type) << r.name;
    EXPECT_EQ(t->ne[0], r.ne0) << r.name;
    EXPECT_EQ(t->ne[1], r.ne1) << r.name;
  }
  EXPECT_EQ(*f.get_u32("gemma3.attention.sliding_window"), 512u);
  EXPECT_EQ(*f.get_f32("gemma3.rope.freq_base"), 1e6f);
  EXPECT_EQ(*f.get_u32("gemma3.attention.head_count_kv"), 1u);
  EXPECT_EQ(*f.get_u32("gemma3.attention.key_length"), 256u);
  auto fallbacks = f.get_string_array("omnirt.synthetic.fallbacks");
  ASSERT_TRUE(fallbacks.ok());
  EXPECT_EQ(fallbacks->size(), 1u + 18u * 5u);  // token_embd + q, k, v, gate, up per layer
  EXPECT_NE(std::string((*fallbacks)[0]).find("token_embd.weight: q4_K -> q5_0"), std::string::npos);
  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  EXPECT_EQ(tokens->size(), 262144u);
  std::vector<float> x = decode(*f.find_tensor("blk.3.attn_output.weight"));
  double mean, sd;
  mean_std(x, &mean, &sd);
  EXPECT_NEAR(sd * std::sqrt(1024.0), 1.0, 0.10);
  std::remove(path.c_str());
}

TEST(Synthetic, BadSpecsGiveClearStatuses) {
  const std::string path = test::temp_path("bad.gguf");
  auto check = [&](SyntheticSpec spec, const std::string& where, StatusCode code, const char* needle) {
    Status st = create_synthetic_model(spec, where);
    EXPECT_EQ(st.code(), code) << st.to_string();
    EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
    EXPECT_FALSE(test::file_exists(where));
    EXPECT_FALSE(test::file_exists(where + ".partial"));
  };
  check({"", "qwen3-235b", DType::kF16, 0, 1}, path, StatusCode::kInvalidArgument, "qwen3-235b");
  check({"llama", "qwen2.5-0.5b", DType::kF16, 0, 1}, path, StatusCode::kInvalidArgument, "qwen2");
  check({"", "tiny", DType::kF16, 0, 1}, path, StatusCode::kInvalidArgument, "tiny");
  check({"mamba", "tiny", DType::kF16, 0, 1}, path, StatusCode::kInvalidArgument, "mamba");
  check({"llama", "tiny", DType::kQ2_K, 0, 1}, path, StatusCode::kUnsupported, "q2_K");
  check({"llama", "tiny", DType::kI32, 0, 1}, path, StatusCode::kUnsupported, "i32");
  check({"llama", "tiny", DType::kF16, 0, 1}, "/nonexistent-dir/x.gguf", StatusCode::kIoError,
        "/nonexistent-dir/x.gguf");
  EXPECT_EQ(synthetic_presets(),
            (std::vector<std::string>{"tiny", "gemma3-270m", "qwen2.5-0.5b", "llama3.2-1b", "qwen2.5-7b"}));
}

TEST(Inspect, ReportListsHeaderMetadataAndTensors) {
  const std::string path = create("gemma3", "tiny", DType::kQ8_0, 5, "inspect.gguf");
  auto file = gguf::GgufFile::open(path);
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  const std::string brief = inspect_gguf(**file, false);
  const std::string all = inspect_gguf(**file, true);
  for (const char* needle : {"GGUF v3", "alignment 32", "SYNTHETIC", "general.architecture",
                             "\"gemma3\"", "tokenizer.ggml.tokens", "512", "q8_0", "f32",
                             "token_embd.weight", "[256, 512]"}) {
    EXPECT_NE(brief.find(needle), std::string::npos) << needle << "\n" << brief;
  }
  // 80 tensors: the brief report stops at 40 and counts the rest; --all lists the last one.
  EXPECT_NE(brief.find("40 more tensors"), std::string::npos) << brief;
  EXPECT_EQ(brief.find("output_norm.weight"), std::string::npos);
  EXPECT_NE(all.find("output_norm.weight"), std::string::npos);
  EXPECT_EQ(all.find("more tensors"), std::string::npos);
  // By type: 6 layers x 7 matrices + token_embd in q8_0, the rest f32.
  EXPECT_NE(brief.find(fmt("q8_0     %6zu tensors", size_t{43})), std::string::npos) << brief;
  EXPECT_NE(brief.find(fmt("f32      %6zu tensors", size_t{37})), std::string::npos) << brief;
  std::remove(path.c_str());
}

}  // namespace
}  // namespace omni

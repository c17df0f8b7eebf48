// The `omnirt` binary (OMNIRT_CLI_PATH) run as a user would: exit codes, the messages on bad
// input, and outputs checked against independent expectations (GPT-2 byte-level ids of the
// synthetic vocabulary, logits read back through the C API). Also: libomnirt exports only omni_*.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "include/omnirt.h"
#include "include/omnirt.hpp"
#include "tests/cli_test_util.h"
#include "tests/test_util.h"

namespace {

namespace fs = std::filesystem;

using Result = omni::test::CliResult;
using omni::test::read_text;

class CliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() /
                        ("omnirt_cli_test_" + std::to_string(::getpid())));
    fs::create_directories(*dir_);
    model_ = new std::string((*dir_ / "tiny_gemma3.gguf").string());
    Result r = run("model create --arch gemma3 --preset tiny --type f16 --seed 7 --out " + *model_);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(*dir_, ec);
    delete dir_;
    delete model_;
  }

  // Runs the CLI with `args` (shell syntax), capturing both streams.
  static Result run(const std::string& args) { return omni::test::run_cli(args, *dir_); }

  static fs::path* dir_;
  static std::string* model_;
};

fs::path* CliTest::dir_ = nullptr;
std::string* CliTest::model_ = nullptr;

TEST_F(CliTest, VersionNamesBackendsAndIsa) {
  Result r = run("--version");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(std::string("omnirt ") + omni_version()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("backends: cpu"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(std::string("cpu isa: ") + omni_cpu_isa()), std::string::npos) << r.out;
}

TEST_F(CliTest, MissingModelIsAnErrorNamingTheFile) {
  Result r = run("generate --model /nonexistent/dir/m.gguf --prompt hi");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent/dir/m.gguf"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("not found"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST_F(CliTest, CorruptModelIsAnError) {
  const std::string bytes = read_text(*model_);
  ASSERT_GT(bytes.size(), 3000u);
  const fs::path cut = *dir_ / "truncated.gguf";
  std::ofstream(cut, std::ios::binary).write(bytes.data(), 3000);
  for (const std::string cmd : {"generate --prompt hi --model ", "tokenize --text hi --model ",
                                "eval --tokens 1 --logits-out /dev/null --model ",
                                "bench --model ", "model inspect "}) {
    Result r = run(cmd + cut.string());
    EXPECT_EQ(r.exit_code, 1) << cmd;
    EXPECT_NE(r.err.find("corrupt file"), std::string::npos) << cmd << ": " << r.err;
    EXPECT_NE(r.err.find("truncated"), std::string::npos) << cmd << ": " << r.err;
  }
}

TEST_F(CliTest, BadFlagsAreUsageErrors) {
  Result r = run("generate --model " + *model_ + " --prompt hi --no-such-flag");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--no-such-flag"), std::string::npos) << r.err;
  r = run("generate --prompt hi");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--model"), std::string::npos) << r.err;
  r = run("generate --model " + *model_ + " --prompt hi -n notanumber");
  EXPECT_EQ(r.exit_code, 2);
  r = run("frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  r = run("generate --model " + *model_ + " --prompt hi --kv q4");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--kv 'q4'"), std::string::npos) << r.err;
  r = run("generate --model " + *model_ + " --prompt hi --system sys");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--system needs --chat"), std::string::npos) << r.err;
  r = run("eval --model " + *model_ + " --tokens '1 x 3' --logits-out /dev/null");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'x'"), std::string::npos) << r.err;
  r = run("model create --preset no-such-preset --out " + (*dir_ / "x.gguf").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no-such-preset"), std::string::npos) << r.err;
  r = run("model create --arch gemma3 --preset tiny --type q3_weird --out " + (*dir_ / "x.gguf").string());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("q3_weird"), std::string::npos) << r.err;
}

TEST_F(CliTest, PromptLongerThanTheContext) {
  const std::string prompt(100, 'a');  // 100 byte-level tokens + BOS
  Result r = run("generate --model " + *model_ + " --ctx 32 --prompt " + prompt);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("prompt does not fit"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("101 tokens"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("n_ctx 32"), std::string::npos) << r.err;
}

TEST_F(CliTest, GenerateStreamsAndReportsStats) {
  Result r = run("generate --model " + *model_ + " --prompt hey -n 8 --temp 0 --threads 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("has random weights (synthetic); its output is noise"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("prompt: 4 tokens"), std::string::npos) << r.err;  // BOS h e y
  EXPECT_NE(r.err.find("tok/s"), std::string::npos) << r.err;
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.back(), '\n');
  // Greedy is deterministic: a second run prints the same text.
  Result again = run("generate --model " + *model_ + " --prompt hey -n 8 --temp 0 --threads 2");
  EXPECT_EQ(again.out, r.out);
  // Chat: Gemma format around system + user, counted in tokens of the byte-level vocabulary:
  // BOS, <start_of_turn>, "user\n" (5), "sys\n\nhi" (7), <end_of_turn>, "\n", <start_of_turn>,
  // "model\n" (6): 23.
  r = run("generate --model " + *model_ + " --chat --system sys --prompt hi -n 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("prompt: 23 tokens"), std::string::npos) << r.err;
}

TEST_F(CliTest, TokenizeMatchesByteLevelIds) {
  // GPT-2 bytes_to_unicode order: '!'..'~' are 0..93, ' ' is 220; BOS is 256.
  Result r = run("tokenize --model " + *model_ + " --text 'hi there'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "256 71 72 220 83 71 68 81 68\n");
  r = run("tokenize --model " + *model_ + " --no-bos --special --text '<end_of_turn>!'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "259 0\n");
  r = run("tokenize --model " + *model_ + " --no-bos --verbose --text 'a'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("64  'a'"), std::string::npos) << r.out;
}

TEST_F(CliTest, EvalWritesEveryRowAndTheLastMatchesTheCApi) {
  const fs::path out = *dir_ / "logits.f32";
  Result r = run("eval --model " + *model_ + " --tokens '256 71 72 220' --kv f32 --logits-out " +
                 out.string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string bytes = read_text(out);
  const size_t n_vocab = 512;
  ASSERT_EQ(bytes.size(), 4 * n_vocab * sizeof(float));
  std::vector<float> rows(4 * n_vocab);
  std::memcpy(rows.data(), bytes.data(), bytes.size());

  // Independent path: the C API (through omnirt.hpp) evaluating the same tokens one at a
  // time, reading the last row after each.
  omnirt::Error err;
  omnirt::ModelPtr model = omnirt::load_model(model_->c_str(), &err);
  ASSERT_TRUE(model) << err.message;
  omnirt::EnginePtr engine = omnirt::create_engine(nullptr, &err);
  ASSERT_TRUE(engine) << err.message;
  omni_session_params p = omni_session_default_params();
  p.kv_type = OMNI_KV_F32;
  p.n_ctx = 16;
  omnirt::SessionPtr session = omnirt::create_session(engine.get(), model.get(), &p, &err);
  ASSERT_TRUE(session) << err.message;
  for (int32_t prefix = 1; prefix <= 4; ++prefix) {  // row i = logits after tokens [0, i]
    const omni_token toks[4] = {256, 71, 72, 220};
    ASSERT_EQ(omni_session_append_tokens(session.get(), &toks[prefix - 1], 1), OMNI_OK);
    const float* logits = nullptr;
    int32_t nv = 0;
    ASSERT_EQ(omni_session_logits(session.get(), &logits, &nv), OMNI_OK);
    ASSERT_EQ(nv, static_cast<int32_t>(n_vocab));
    float max_diff = 0;
    for (size_t j = 0; j < n_vocab; ++j) {
      max_diff = std::max(max_diff, std::abs(logits[j] - rows[(prefix - 1) * n_vocab + j]));
    }
    EXPECT_LT(max_diff, 1e-3f) << "row " << prefix - 1;
  }
  // The RAII generate wrapper: a callable that stops after two tokens.
  int seen = 0;
  err = omnirt::generate(session.get(), 8, [&](omni_token, std::string_view) { return ++seen < 2; });
  EXPECT_FALSE(err) << err.message;
  EXPECT_EQ(seen, 2);
  EXPECT_EQ(omni_session_stop_reason(session.get()), OMNI_STOP_CALLBACK);
  EXPECT_EQ(omni_session_n_tokens(session.get()), 6);
}

TEST_F(CliTest, InspectReportsMetadata) {
  Result r = run("model inspect " + *model_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("general.architecture"), std::string::npos);
  EXPECT_NE(r.out.find("gemma3"), std::string::npos);
  EXPECT_NE(r.out.find("token_embd.weight"), std::string::npos);
  r = run("model inspect /nonexistent.gguf");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("/nonexistent.gguf"), std::string::npos);
}

TEST_F(CliTest, BenchJson) {
  Result r = run("bench --model " + *model_ +
                 " --prompt-tokens 8,16 --gen-tokens 4 --reps 2 --threads 1 --probe-mib 64 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["arch"], "gemma3");
  EXPECT_EQ(j["synthetic"], true);
  EXPECT_EQ(j["threads"], 1);
  EXPECT_GT(j["weight_bytes"].get<double>(), 0);
  EXPECT_GT(j["peak_rss_bytes"].get<double>(), 0);
  ASSERT_EQ(j["results"].size(), 2u);
  EXPECT_EQ(j["results"][1]["prompt_tokens"], 16);
  for (const auto& row : j["results"]) {
    for (const char* k : {"prefill_tok_s", "decode_tok_s", "roofline_fraction", "roofline_fraction_paired",
                          "paired_stream_read_gb_s"}) {
      ASSERT_TRUE(row.contains(k)) << k;
      const double lo = row[k]["min"], med = row[k]["median"], hi = row[k]["max"];
      EXPECT_GT(lo, 0);
      EXPECT_LE(lo, med);
      EXPECT_LE(med, hi);
    }
  }
  r = run("bench --model " + *model_ + " --reps 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("--reps 0"), std::string::npos) << r.err;
}

// The memory target on the real model: the weights stay mapped, never copied, so the
// peak RSS of a whole bench run is at most the file + the KV cache + 64 MiB (the tokenizer, the
// buffers, the code). A separate process, so that only this run's peak counts.
TEST_F(CliTest, BenchPeakRssIsFilePlusKvPlus64MiB) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's shadow memory and quarantine are in the RSS";
#else
  const std::string path = omni::test::source_path("models/gemma-3-270m-q4_k_m.gguf");
  if (!omni::test::file_exists(path)) GTEST_SKIP() << "models/gemma-3-270m-q4_k_m.gguf is not installed";
  Result r = run("bench --model " + path + " --prompt-tokens 512 --gen-tokens 4 --reps 1 --threads 2 --no-probe --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  const double file = static_cast<double>(fs::file_size(path)), kv = j["kv_cache_bytes"].get<double>(),
               rss = j["peak_rss_bytes"].get<double>();
  std::printf("[ info ] peak RSS %.1f MiB, file %.1f + KV %.1f + 64 = %.1f MiB\n", rss / 1048576, file / 1048576,
              kv / 1048576, (file + kv) / 1048576 + 64);
  EXPECT_GT(rss, file);  // the whole file is faulted in at load (settle_pages)
  EXPECT_LE(rss, file + kv + 64.0 * 1048576);
#endif
}

// The shared library's dynamic symbol table holds the C API and nothing else, the audio and
// image entry points among it as code.
TEST(LibraryExports, OnlyOmniSymbols) {
  std::string skip;
  const std::map<std::string, char> symbols = omni::test::exported_symbols(&skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  int n_omni = 0;
  for (const auto& [name, type] : symbols) {
    if (name.rfind("omni_", 0) == 0) {
      ++n_omni;
    } else {
      ADD_FAILURE() << "unexpected exported symbol: " << type << " " << name;
    }
  }
  EXPECT_GE(n_omni, 40);  // the v0 API
  for (const char* fn : {"omni_audio_default_params", "omni_model_has_audio", "omni_session_audio_begin",
                         "omni_session_append_audio", "omni_session_audio_end",
                         "omni_model_load_mmproj", "omni_model_has_vision", "omni_model_vision_stats",
                         "omni_session_append_image", "omni_session_append_image_file",
                         "omni_session_append_prompt", "omni_session_append_chat_images",
                         "omni_session_append_image_rgb", "omni_session_append_video_file"}) {
    const auto it = symbols.find(fn);
    EXPECT_TRUE(it != symbols.end() && it->second == 'T') << fn << " is not exported as code";
  }
}

}  // namespace

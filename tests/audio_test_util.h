// Helpers shared by the audio tests: a minimal PCM16 WAV reader (independent of FFmpeg, so the
// Whisper tests run in builds without it), word error counting as the fixture scripts do it, and
// a synthetic omni preset loaded with its audio-out heads and codec (the voice tests).
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/model/audio_out.h"
#include "runtime/model/model.h"
#include "runtime/model/snac_loader.h"
#include "runtime/model/synthetic_omni.h"
#include "tests/test_util.h"

namespace omni::test {

// PCM16 mono WAV -> f32 (s16 / 32768, as whisper.load_audio). Empty on anything else.
inline std::vector<float> read_wav_pcm16(const std::string& path) {
  const std::vector<uint8_t> b = test::read_file(path);
  if (b.size() < 12 || std::memcmp(b.data(), "RIFF", 4) != 0 || std::memcmp(b.data() + 8, "WAVE", 4) != 0)
    return {};
  size_t o = 12;
  uint16_t fmt_tag = 0, channels = 0, bits = 0;
  while (o + 8 <= b.size()) {
    uint32_t len;
    std::memcpy(&len, b.data() + o + 4, 4);
    const uint8_t* body = b.data() + o + 8;
    if (o + 8 + len > b.size()) return {};
    if (std::memcmp(b.data() + o, "fmt ", 4) == 0 && len >= 16) {
      std::memcpy(&fmt_tag, body, 2);
      std::memcpy(&channels, body + 2, 2);
      std::memcpy(&bits, body + 14, 2);
    } else if (std::memcmp(b.data() + o, "data", 4) == 0) {
      if (fmt_tag != 1 || channels != 1 || bits != 16) return {};
      std::vector<float> out(len / 2);
      for (size_t i = 0; i < out.size(); ++i) {
        int16_t s;
        std::memcpy(&s, body + 2 * i, 2);
        out[i] = static_cast<float>(s) / 32768.0f;
      }
      return out;
    }
    o += 8 + len + (len & 1);
  }
  return {};
}

// Lower-case ASCII words (letters, digits, apostrophes), as normalize_words in
// tools/make_whisper_fixtures.py.
inline std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  std::string w;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 128 && (std::isalnum(u) || c == '\'')) {
      w.push_back(static_cast<char>(std::tolower(u)));
    } else if (!w.empty()) {
      out.push_back(w);
      w.clear();
    }
  }
  if (!w.empty()) out.push_back(w);
  return out;
}

// Levenshtein distance over words: substitutions + deletions + insertions.
inline size_t word_errors(const std::vector<std::string>& ref, const std::vector<std::string>& hyp) {
  std::vector<size_t> d(hyp.size() + 1);
  for (size_t j = 0; j <= hyp.size(); ++j) d[j] = j;
  for (size_t i = 1; i <= ref.size(); ++i) {
    size_t prev = d[0];
    d[0] = i;
    for (size_t j = 1; j <= hyp.size(); ++j) {
      const size_t cur = std::min({d[j] + 1, d[j - 1] + 1, prev + (ref[i - 1] != hyp[j - 1] ? 1 : 0)});
      prev = d[j];
      d[j] = cur;
    }
  }
  return d[hyp.size()];
}

// A synthetic omni model (create_synthetic_omni) with its audio-out heads and SNAC codec.
struct LoadedOmni {
  std::unique_ptr<Model> model;
  AudioOutHeads heads;
  std::unique_ptr<SnacModel> snac;
};

// Writes the synthetic `preset` (matrices in `type`, weights from `seed`, built on 2 threads) to a
// temp file, loads it and removes the file. A failure is a test failure (EXPECT) and leaves the
// fields that did not load empty: callers ASSERT on model / snac.
inline LoadedOmni load_synthetic_omni(const std::string& preset, DType type, uint64_t seed) {
  LoadedOmni l;
  const std::string path = temp_path("synthetic_omni_" + preset + ".gguf");
  Status st = create_synthetic_omni({preset, type, seed, 2}, path);
  EXPECT_TRUE(st.ok()) << st.to_string();
  auto m = Model::load(path);
  std::remove(path.c_str());
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  if (!m.ok()) return l;
  l.model = std::move(*m);
  auto h = load_audio_out(*l.model);
  EXPECT_TRUE(h.ok()) << h.status().to_string();
  if (h.ok()) l.heads = std::move(*h);
  auto s = load_snac(l.model->file());
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  if (s.ok()) l.snac = std::move(*s);
  return l;
}

}  // namespace omni::test

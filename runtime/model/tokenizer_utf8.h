// UTF-8 helpers shared by the tokenizer files (internal; not part of the runtime's interface).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace omni::utf8 {

inline constexpr const char kSpmSpace[] = "\xE2\x96\x81";  // U+2581 "▁", SentencePiece's space

// Length of the sequence a lead byte starts (1-4), 0 for a continuation or invalid lead byte.
inline size_t sequence_length(unsigned char b) {
  if (b < 0x80) return 1;
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

// Bytes [1, n) of a sequence must be continuations in the ranges RFC 3629 allows:
// no overlongs (E0 A0.., F0 90..), no surrogates (ED ..9F), nothing above U+10FFFF (F4 ..8F).
inline bool continuation_ok(unsigned char lead, size_t index, unsigned char b) {
  if (index == 1) {
    if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
    if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
    if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
    if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
  }
  return b >= 0x80 && b <= 0xBF;
}

// Whole-string validation; on failure *bad_offset is the offset of the first byte that is wrong.
inline bool valid(std::string_view s, size_t* bad_offset = nullptr) {
  for (size_t i = 0; i < s.size();) {
    const auto lead = static_cast<unsigned char>(s[i]);
    const size_t n = sequence_length(lead);
    bool ok = n != 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) ok = continuation_ok(lead, k, static_cast<unsigned char>(s[i + k]));
    if (!ok) {
      if (bad_offset != nullptr) *bad_offset = i;
      return false;
    }
    i += n;
  }
  return true;
}

// True when s (shorter than its lead byte announces) could still become a valid sequence.
inline bool valid_prefix(std::string_view s) {
  if (s.empty()) return true;
  const auto lead = static_cast<unsigned char>(s[0]);
  const size_t n = sequence_length(lead);
  if (n == 0 || s.size() >= n) return false;
  for (size_t k = 1; k < s.size(); ++k)
    if (!continuation_ok(lead, k, static_cast<unsigned char>(s[k]))) return false;
  return true;
}

inline bool parse_hex2(const char* p, int* value) {
  int v = 0;
  for (int k = 0; k < 2; ++k) {
    const char c = p[k];
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else return false;
    v = v * 16 + d;
  }
  *value = v;
  return true;
}

inline void append_codepoint(std::string* s, uint32_t cp) {
  if (cp < 0x80) {
    s->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    s->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    s->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decodes the code point at s[*i] (s already valid UTF-8) and advances *i.
inline uint32_t next_codepoint(std::string_view s, size_t* i) {
  const auto b0 = static_cast<unsigned char>(s[*i]);
  const size_t n = sequence_length(b0);
  uint32_t cp = n == 1 ? b0 : n == 2 ? (b0 & 0x1Fu) : n == 3 ? (b0 & 0x0Fu) : (b0 & 0x07u);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[*i + k]) & 0x3Fu);
  *i += n == 0 ? 1 : n;
  return cp;
}

// GPT-2's byte-to-unicode alphabet: printable Latin-1 bytes map to themselves, the other 68
// bytes to U+0100.. in byte order (so " " is "Ġ", "\n" is "Ċ").
uint32_t gpt2_codepoint_of_byte(uint8_t b);
// Inverse; -1 for a code point outside the alphabet.
int gpt2_byte_of_codepoint(uint32_t cp);
// A piece in the GPT-2 alphabet back to raw bytes (code points outside the alphabet kept as UTF-8).
std::string bytes_from_gpt2_alphabet(std::string_view piece);

}  // namespace omni::utf8

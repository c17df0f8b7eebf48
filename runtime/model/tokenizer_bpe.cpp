// Byte-level BPE (GPT-2 family), as llama.cpp's llm_tokenizer_bpe does it: split the text with
// the pre-tokenizer regexes named by tokenizer.ggml.pre (PCRE2, UTF + UCP), map each word's bytes
// to the GPT-2 alphabet, then merge adjacent pairs by merge rank (lowest first, ties leftmost).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <queue>

#include "runtime/model/tokenizer.h"
#include "runtime/model/tokenizer_utf8.h"

namespace omni {
namespace utf8 {

uint32_t gpt2_codepoint_of_byte(uint8_t b) {
  if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)) return b;
  uint32_t n = 0;  // rank of b among the non-printable bytes
  for (uint32_t c = 0; c < b; ++c) {
    if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE))) ++n;
  }
  return 256 + n;
}

int gpt2_byte_of_codepoint(uint32_t cp) {
  static const auto table = [] {
    std::vector<int> t(256 + 68, -1);
    for (int b = 0; b < 256; ++b) t[gpt2_codepoint_of_byte(static_cast<uint8_t>(b))] = b;
    return t;
  }();
  return cp < table.size() ? table[cp] : -1;
}

std::string bytes_from_gpt2_alphabet(std::string_view piece) {
  std::string s;
  s.reserve(piece.size());
  for (size_t i = 0; i < piece.size();) {
    const size_t start = i;
    const uint32_t cp = next_codepoint(piece, &i);
    const int b = gpt2_byte_of_codepoint(cp);
    if (b >= 0) s.push_back(static_cast<char>(b));
    else s.append(piece.substr(start, i - start));
  }
  return s;
}

}  // namespace utf8

namespace {

// Regex sets from llama.cpp (llama-vocab.cpp), applied in sequence: each splits every word the
// previous one produced; matched and unmatched stretches both become words.
constexpr const char* kGpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
constexpr const char* kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
constexpr const char* kQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}|"
    " ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

struct PreSet {
  std::vector<std::string_view> names;
  std::vector<const char*> regexes;
  bool ignore_merges;
};

const std::vector<PreSet>& pre_sets() {
  static const std::vector<PreSet> sets = {
      {{"default"},
       {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"},
       false},
      {{"gpt2", "gpt-2", "phi-2", "mpt", "olmo", "jais"}, {kGpt2}, false},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral"}, {kLlama3}, true},
      {{"qwen2", "stablelm2", "deepseek-r1-qwen", "megrez"}, {kQwen2}, false},
      {{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"},
       {"\\p{N}", kGpt2},
       false},
      {{"falcon"}, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"}, false},
  };
  return sets;
}

}  // namespace

struct Tokenizer::PreTokenizer {
  std::vector<pcre2_code*> codes;
  ~PreTokenizer() {
    for (pcre2_code* c : codes) pcre2_code_free(c);
  }
};

Status Tokenizer::init_bpe() {
  const PreSet* set = nullptr;
  for (const PreSet& s : pre_sets()) {
    for (std::string_view n : s.names) {
      if (n == pre_name_) set = &s;
    }
  }
  if (set == nullptr)
    return unsupported(fmt("tokenizer: pre-tokenizer '%s' is not supported", pre_name_.c_str()));
  ignore_merges_ = set->ignore_merges;
  auto pre = std::make_shared<PreTokenizer>();
  for (const char* rx : set->regexes) {
    int err = 0;
    PCRE2_SIZE err_off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(rx), PCRE2_ZERO_TERMINATED,
                                     PCRE2_UTF | PCRE2_UCP, &err, &err_off, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof(msg));
      return internal_error(fmt("tokenizer: regex for '%s' failed to compile at %zu: %s", pre_name_.c_str(),
                                static_cast<size_t>(err_off), reinterpret_cast<const char*>(msg)));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // best effort; the interpreter is the fallback
    pre->codes.push_back(code);
  }
  pre_ = std::move(pre);
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    utf8::append_codepoint(&ch, utf8::gpt2_codepoint_of_byte(static_cast<uint8_t>(b)));
    byte_ids_[b] = find_piece(ch);
  }
  return Status::Ok();
}

Status Tokenizer::encode_bpe(std::string_view text, std::vector<int32_t>* out) const {
  // Word boundaries as [begin, end) byte offsets, refined by each regex in turn.
  std::vector<std::pair<size_t, size_t>> words{{0, text.size()}}, next;
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  if (md == nullptr) return Status(StatusCode::kOutOfMemory, "tokenizer: pcre2 match data");
  for (pcre2_code* code : pre_->codes) {
    next.clear();
    for (auto [begin, end] : words) {
      size_t pos = begin;
      while (pos < end) {
        const int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data() + begin), end - begin, pos - begin,
                                   PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
          pcre2_match_data_free(md);
          return internal_error(fmt("tokenizer: pre-tokenizer regex failed with PCRE2 error %d", rc));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t ms = begin + ov[0], me = begin + ov[1];
        if (ms > pos) next.emplace_back(pos, ms);  // unmatched stretch stays a word
        if (me == ms) {                            // empty match: step over one character
          size_t step = utf8::sequence_length(static_cast<unsigned char>(text[ms]));
          next.emplace_back(ms, ms + (step == 0 ? 1 : step));
          pos = ms + (step == 0 ? 1 : step);
          continue;
        }
        next.emplace_back(ms, me);
        pos = me;
      }
      if (pos < end) next.emplace_back(pos, end);
    }
    words.swap(next);
  }
  pcre2_match_data_free(md);
  for (auto [begin, end] : words) bpe_word(text.substr(begin, end - begin), out);
  return Status::Ok();
}

namespace {
struct Symbol {
  int32_t prev, next;
  size_t offset, size;  // bytes of the mapped word
};
struct Bigram {
  int32_t rank, left, right;
  size_t size;
  bool operator<(const Bigram& o) const {  // priority_queue pops the largest: lowest rank first
    return rank > o.rank || (rank == o.rank && left > o.left);
  }
};
}  // namespace

void Tokenizer::bpe_word(std::string_view word, std::vector<int32_t>* out) const {
  std::string s;  // the word in the GPT-2 alphabet
  s.reserve(word.size() * 2);
  std::vector<Symbol> sym;
  for (unsigned char b : word) {
    const size_t off = s.size();
    utf8::append_codepoint(&s, utf8::gpt2_codepoint_of_byte(b));
    const auto idx = static_cast<int32_t>(sym.size());
    sym.push_back({idx - 1, idx + 1, off, s.size() - off});
  }
  if (sym.empty()) return;
  sym.back().next = -1;
  if (ignore_merges_) {
    const int32_t id = find_piece(s);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  // Symbols are merged byte sequences, which need not end on UTF-8 boundaries of the word, but do
  // on those of the mapped string, so the pair key can be built from the mapped text directly.
  std::priority_queue<Bigram> queue;
  std::string key;
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = sym[static_cast<size_t>(left)];
    const Symbol& r = sym[static_cast<size_t>(right)];
    key.assign(s, l.offset, l.size);
    key.push_back(' ');
    key.append(s, r.offset, r.size);
    auto it = merge_rank_.find(key);
    if (it == merge_rank_.end()) return;
    queue.push({it->second, left, right, l.size + r.size});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[static_cast<size_t>(b.left)];
    Symbol& r = sym[static_cast<size_t>(b.right)];
    if (l.size == 0 || r.size == 0 || l.size + r.size != b.size || l.next != b.right) continue;
    l.size += r.size;
    r.size = 0;
    l.next = r.next;
    if (r.next >= 0) sym[static_cast<size_t>(r.next)].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int32_t i = 0; i >= 0; i = sym[static_cast<size_t>(i)].next) {
    const Symbol& x = sym[static_cast<size_t>(i)];
    const std::string_view piece = std::string_view(s).substr(x.offset, x.size);
    const int32_t id = find_piece(piece);
    if (id >= 0) {
      out->push_back(id);
      continue;
    }
    // A merge result missing from the vocabulary: fall back to one token per byte.
    for (size_t k = 0; k < piece.size();) {
      const uint32_t cp = utf8::next_codepoint(piece, &k);
      const int byte = utf8::gpt2_byte_of_codepoint(cp);
      if (byte >= 0 && byte_ids_[byte] >= 0) out->push_back(byte_ids_[byte]);
      else if (unk_ >= 0) out->push_back(unk_);
    }
  }
}

}  // namespace omni

// Tokenizers built from GGUF metadata (tokenizer.ggml.*):
//  - "llama": SentencePiece-style; pieces with scores, merged greedily by best score,
//    byte-fallback tokens <0xNN>, "▁" for spaces, optional add_space_prefix.
//  - "gpt2": byte-level BPE; merges ranked by order, a pre-tokenizer regex chosen by
//    tokenizer.ggml.pre (gpt2, llama-bpe/llama3, qwen2, ...) run through PCRE2.
// Thread-safety: a Tokenizer is immutable after creation; encode/decode are const and may run
// concurrently. StreamDetokenizer is per stream.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "kernels/core/status.h"
#include "runtime/model/gguf.h"

namespace omni {

enum class TokenizerKind { kSpm, kBpe };

// tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6,
};

// Everything a tokenizer is built from; from_gguf fills one from tokenizer.ggml.* metadata.
struct TokenizerVocab {
  TokenizerKind kind = TokenizerKind::kSpm;
  std::string pre = "default";       // tokenizer.ggml.pre: BPE pre-tokenizer regex set
  std::vector<std::string> pieces;   // id -> piece text (BPE: in the GPT-2 byte alphabet)
  std::vector<float> scores;         // SPM merge priority per piece; empty = all 0
  std::vector<int32_t> types;        // TokenType per piece; empty = all normal
  std::vector<std::string> merges;   // BPE, "left right", rank = index
  int32_t bos = -1, eos = -1, unk = -1, pad = -1, eot = -1, eom = -1;
  bool add_bos = false, add_eos = false;
  bool add_space_prefix = false;     // SPM: prepend "▁" at the start and after each special token
};

class Tokenizer {
 public:
  static StatusOr<std::unique_ptr<Tokenizer>> from_gguf(const gguf::GgufFile& file);
  // Validates the vocabulary (ids in range, known types, merges naming pieces, regex set known):
  // kInvalidArgument naming the bad entry.
  static StatusOr<std::unique_ptr<Tokenizer>> from_vocab(TokenizerVocab vocab);
  virtual ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  TokenizerKind kind() const { return kind_; }
  int32_t n_vocab() const { return static_cast<int32_t>(pieces_.size()); }
  int32_t bos() const { return bos_; }  // -1 when the vocabulary has none
  int32_t eos() const { return eos_; }
  bool add_bos() const { return add_bos_; }  // tokenizer.ggml.add_bos_token
  // End of generation: eos, eot and the chat end markers (<end_of_turn>, <|im_end|>, <|eot_id|>).
  bool is_end_of_generation(int32_t id) const;
  bool is_control(int32_t id) const;  // control/special tokens: not rendered by decode()

  // Encodes UTF-8 text. Invalid UTF-8 is kInvalidArgument. With parse_special, the text of
  // special tokens (e.g. "<start_of_turn>") maps to their ids; otherwise it is plain text.
  StatusOr<std::vector<int32_t>> encode(std::string_view text, bool add_bos, bool parse_special) const;
  // Raw bytes of one token (byte-fallback and byte-level tokens decoded; may be partial UTF-8).
  // Out-of-range id is kOutOfRange.
  StatusOr<std::string> token_bytes(int32_t id) const;
  // Bytes of a sequence; control tokens skipped unless render_special.
  StatusOr<std::string> decode(std::span<const int32_t> ids, bool render_special = false) const;
  // Looks up the id of an exact piece text ("<end_of_turn>"), -1 if absent.
  int32_t find_piece(std::string_view piece) const;
  const std::string& piece(int32_t id) const { return pieces_[static_cast<size_t>(id)]; }
  TokenType token_type(int32_t id) const { return types_[static_cast<size_t>(id)]; }
  bool add_eos() const { return add_eos_; }
  bool add_space_prefix() const { return add_space_prefix_; }
  const std::string& pre_tokenizer() const { return pre_name_; }

  struct PreTokenizer;  // compiled PCRE2 regexes (tokenizer_bpe.cpp)
  struct SpecialTrie;   // special-token matcher (tokenizer.cpp)

 protected:
  Tokenizer();
  TokenizerKind kind_ = TokenizerKind::kSpm;
  std::vector<std::string> pieces_;
  int32_t bos_ = -1, eos_ = -1;
  bool add_bos_ = false;

 private:
  // Appends the ids of one run of plain text (no special tokens in it).
  // after_special: the run starts the text or follows a special token (SPM space prefix).
  void encode_spm(std::string_view text, bool after_special, std::vector<int32_t>* out) const;
  Status encode_bpe(std::string_view text, std::vector<int32_t>* out) const;
  void bpe_word(std::string_view word, std::vector<int32_t>* out) const;
  void push_bytes_fallback(std::string_view bytes, std::vector<int32_t>* out) const;
  Status init_bpe();  // merges + pre-tokenizer

  std::vector<TokenType> types_;
  std::vector<float> scores_;
  // piece text -> id (find_piece): open addressing with linear probing, a power of two >= 2n
  // slots holding ids into pieces_ (-1 = empty); a repeated piece keeps its first id. 4 bytes a
  // slot where an unordered_map took a ~48-byte node per piece (12 MiB for Gemma 3's 262,144).
  std::vector<int32_t> piece_slots_;
  std::unordered_map<std::string, int32_t> merge_rank_;  // BPE "left right" -> rank
  int32_t byte_ids_[256];  // SPM <0xNN> or BPE single-byte piece per byte value; -1 if absent
  int32_t unk_ = -1, eot_ = -1, eom_ = -1;
  std::vector<int32_t> end_ids_;  // sorted: ids that end generation
  bool add_eos_ = false, add_space_prefix_ = false, ignore_merges_ = false;
  std::string pre_name_;
  std::unique_ptr<SpecialTrie> specials_;
  std::shared_ptr<const PreTokenizer> pre_;  // shared_ptr: its deleter lives in tokenizer_bpe.cpp
};

// Turns a stream of token ids into UTF-8 text without ever emitting half a character:
// bytes of an incomplete UTF-8 sequence are held until the sequence completes.
class StreamDetokenizer {
 public:
  explicit StreamDetokenizer(const Tokenizer& tok) : tok_(&tok) {}
  // Returns the complete characters available after this token (possibly empty).
  StatusOr<std::string> push(int32_t id);
  // Remaining bytes at the end of the stream; invalid leftovers become U+FFFD.
  std::string flush();

 private:
  const Tokenizer* tok_;
  std::string pending_;
  bool at_start_ = true;  // SPM with add_space_prefix: the first rendered space is dropped
};

enum class ChatTemplate { kNone, kGemma, kChatML, kLlama3 };
const char* chat_template_name(ChatTemplate t);
// From tokenizer.chat_template (a Jinja string; recognised by its markers) or, failing that,
// from general.architecture (gemma3 -> Gemma, qwen2 -> ChatML, llama + <|eot_id|> -> Llama 3).
ChatTemplate detect_chat_template(const gguf::GgufFile& file, const Tokenizer& tok);
bool chat_template_from_name(std::string_view name, ChatTemplate* out);

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};
// Renders messages as the model was trained to see them, ending with the assistant's turn
// opener when add_generation_prompt. BOS is not included (the tokenizer adds it).
StatusOr<std::string> apply_chat_template(ChatTemplate t, const std::vector<ChatMessage>& messages,
                                          bool add_generation_prompt);

}  // namespace omni

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
#include <vector>

#include "kernels/core/status.h"
#include "runtime/model/gguf.h"

namespace omni {

enum class TokenizerKind { kSpm, kBpe };

class Tokenizer {
 public:
  static StatusOr<std::unique_ptr<Tokenizer>> from_gguf(const gguf::GgufFile& file);
  virtual ~Tokenizer() = default;

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

 protected:
  Tokenizer() = default;
  TokenizerKind kind_ = TokenizerKind::kSpm;
  std::vector<std::string> pieces_;
  int32_t bos_ = -1, eos_ = -1;
  bool add_bos_ = false;
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

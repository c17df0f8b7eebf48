// Tokenizer: vocabulary loading, special-token partitioning, decoding, streaming detokenizer.
// The merge algorithms live in tokenizer_spm.cpp and tokenizer_bpe.cpp.
#include "runtime/model/tokenizer.h"

#include <algorithm>
#include <cstring>

#include "runtime/model/tokenizer_utf8.h"

namespace omni {

// Byte trie over the text of special tokens (control, unknown, user-defined), for
// leftmost-longest matching in O(text length × longest token).
struct Tokenizer::SpecialTrie {
  struct Node {
    std::vector<std::pair<uint8_t, int32_t>> next;  // byte -> node index
    int32_t id = -1;                                // token ending here
  };
  std::vector<Node> nodes{Node{}};

  void insert(std::string_view text, int32_t id) {
    int32_t n = 0;
    for (unsigned char c : text) {
      int32_t child = -1;
      for (const auto& [b, idx] : nodes[static_cast<size_t>(n)].next) {
        if (b == c) { child = idx; break; }
      }
      if (child < 0) {
        child = static_cast<int32_t>(nodes.size());
        nodes[static_cast<size_t>(n)].next.emplace_back(c, child);
        nodes.emplace_back();
      }
      n = child;
    }
    if (nodes[static_cast<size_t>(n)].id < 0) nodes[static_cast<size_t>(n)].id = id;  // first id wins
  }

  // Longest accepted token starting at text[pos]; returns its length (0 if none) and id.
  template <class Accept>
  size_t match(std::string_view text, size_t pos, const Accept& accept, int32_t* id) const {
    size_t best = 0;
    int32_t n = 0;
    for (size_t i = pos; i < text.size(); ++i) {
      const auto c = static_cast<unsigned char>(text[i]);
      int32_t child = -1;
      for (const auto& [b, idx] : nodes[static_cast<size_t>(n)].next) {
        if (b == c) { child = idx; break; }
      }
      if (child < 0) break;
      n = child;
      const int32_t t = nodes[static_cast<size_t>(n)].id;
      if (t >= 0 && accept(t)) { best = i + 1 - pos; *id = t; }
    }
    return best;
  }
};

Tokenizer::Tokenizer() { std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1); }
Tokenizer::~Tokenizer() = default;

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::from_vocab(TokenizerVocab v) {
  const size_t n = v.pieces.size();
  if (n == 0) return invalid_argument("tokenizer: empty vocabulary");
  if (n > static_cast<size_t>(INT32_MAX)) return invalid_argument(fmt("tokenizer: %zu pieces is too many", n));
  if (!v.scores.empty() && v.scores.size() != n)
    return invalid_argument(fmt("tokenizer: %zu scores for %zu pieces", v.scores.size(), n));
  if (!v.types.empty() && v.types.size() != n)
    return invalid_argument(fmt("tokenizer: %zu token types for %zu pieces", v.types.size(), n));
  const int32_t* special_ids[] = {&v.bos, &v.eos, &v.unk, &v.pad, &v.eot, &v.eom};
  const char* special_names[] = {"bos", "eos", "unknown", "padding", "eot", "eom"};
  for (size_t k = 0; k < 6; ++k) {
    if (*special_ids[k] < -1 || *special_ids[k] >= static_cast<int64_t>(n)) {
      return invalid_argument(fmt("tokenizer: %s token id %d is outside the vocabulary [0, %zu)",
                                  special_names[k], *special_ids[k], n));
    }
  }

  std::unique_ptr<Tokenizer> t(new Tokenizer());
  t->kind_ = v.kind;
  t->pieces_ = std::move(v.pieces);
  t->scores_ = v.scores.empty() ? std::vector<float>(n, 0.0f) : std::move(v.scores);
  t->types_.resize(n, TokenType::kNormal);
  for (size_t i = 0; i < v.types.size(); ++i) {
    if (v.types[i] < 1 || v.types[i] > 6)
      return invalid_argument(fmt("tokenizer: token %zu has unknown type %d", i, v.types[i]));
    t->types_[i] = static_cast<TokenType>(v.types[i]);
  }
  t->bos_ = v.bos;
  t->eos_ = v.eos;
  t->unk_ = v.unk;
  t->eot_ = v.eot;
  t->eom_ = v.eom;
  t->add_bos_ = v.add_bos;
  t->add_eos_ = v.add_eos;
  t->add_space_prefix_ = v.kind == TokenizerKind::kSpm && v.add_space_prefix;
  t->pre_name_ = std::move(v.pre);

  size_t n_slots = 16;
  while (n_slots < 2 * n) n_slots *= 2;
  t->piece_slots_.assign(n_slots, -1);
  t->specials_ = std::make_unique<SpecialTrie>();
  for (size_t i = 0; i < n; ++i) {
    const std::string& p = t->pieces_[i];
    if (!utf8::valid(p)) return invalid_argument(fmt("tokenizer: token %zu is not valid UTF-8", i));
    const auto id = static_cast<int32_t>(i);
    for (size_t h = std::hash<std::string_view>{}(p) & (n_slots - 1);; h = (h + 1) & (n_slots - 1)) {
      const int32_t at = t->piece_slots_[h];
      if (at < 0) {
        t->piece_slots_[h] = id;
        break;
      }
      if (t->pieces_[static_cast<size_t>(at)] == p) break;  // repeated piece: the first id stays
    }
    const TokenType ty = t->types_[i];
    if (!p.empty() && (ty == TokenType::kControl || ty == TokenType::kUnknown || ty == TokenType::kUserDefined))
      t->specials_->insert(p, id);
    if (v.kind == TokenizerKind::kSpm && p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>') {
      int value = 0;
      if (utf8::parse_hex2(p.data() + 3, &value) && t->byte_ids_[value] < 0) t->byte_ids_[value] = id;
    }
  }
  if (v.kind == TokenizerKind::kBpe) {
    t->merge_rank_.reserve(v.merges.size());
    for (size_t i = 0; i < v.merges.size(); ++i) {
      const std::string& m = v.merges[i];
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos || sp + 1 >= m.size())
        return invalid_argument(fmt("tokenizer: merge %zu ('%s') is not 'left right'", i, m.c_str()));
      t->merge_rank_.emplace(m, static_cast<int32_t>(i));
    }
    OMNI_RETURN_IF_ERROR(t->init_bpe());
  }
  // Ids that end generation: eos/eot/eom and the chat-format end markers when present.
  for (int32_t id : {t->eos_, t->eot_, t->eom_}) if (id >= 0) t->end_ids_.push_back(id);
  for (const char* marker : {"<end_of_turn>", "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|endoftext|>"}) {
    const int32_t id = t->find_piece(marker);
    if (id >= 0 && t->types_[static_cast<size_t>(id)] == TokenType::kControl) t->end_ids_.push_back(id);
  }
  std::sort(t->end_ids_.begin(), t->end_ids_.end());
  t->end_ids_.erase(std::unique(t->end_ids_.begin(), t->end_ids_.end()), t->end_ids_.end());
  return t;
}

StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::from_gguf(const gguf::GgufFile& file) {
  TokenizerVocab v;
  OMNI_ASSIGN_OR_RETURN(std::string model, file.get_string_or("tokenizer.ggml.model", ""));
  if (model == "llama") {
    v.kind = TokenizerKind::kSpm;
  } else if (model == "gpt2") {
    v.kind = TokenizerKind::kBpe;
  } else if (model.empty()) {
    return not_found("tokenizer: GGUF has no tokenizer.ggml.model");
  } else {
    return unsupported(fmt("tokenizer: tokenizer.ggml.model '%s' is not supported (llama, gpt2)", model.c_str()));
  }
  OMNI_ASSIGN_OR_RETURN(v.pre, file.get_string_or("tokenizer.ggml.pre", "default"));
  OMNI_ASSIGN_OR_RETURN(auto tokens, file.get_string_array("tokenizer.ggml.tokens"));
  v.pieces.assign(tokens.begin(), tokens.end());
  if (file.find("tokenizer.ggml.scores") != nullptr) {
    OMNI_ASSIGN_OR_RETURN(v.scores, file.get_f32_array("tokenizer.ggml.scores"));
  }
  if (file.find("tokenizer.ggml.token_type") != nullptr) {
    OMNI_ASSIGN_OR_RETURN(v.types, file.get_i32_array("tokenizer.ggml.token_type"));
  }
  // A byte-level vocabulary without merges is valid (every byte is a token); gguf-py omits
  // empty arrays, so such files simply lack the key.
  if (v.kind == TokenizerKind::kBpe && file.find("tokenizer.ggml.merges") != nullptr) {
    OMNI_ASSIGN_OR_RETURN(auto merges, file.get_string_array("tokenizer.ggml.merges"));
    v.merges.assign(merges.begin(), merges.end());
  }
  // Absent ids are -1; llama.cpp's per-model defaults are not guessed.
  const std::pair<const char*, int32_t*> ids[] = {
      {"tokenizer.ggml.bos_token_id", &v.bos},     {"tokenizer.ggml.eos_token_id", &v.eos},
      {"tokenizer.ggml.unknown_token_id", &v.unk}, {"tokenizer.ggml.padding_token_id", &v.pad},
      {"tokenizer.ggml.eot_token_id", &v.eot},     {"tokenizer.ggml.eom_token_id", &v.eom}};
  for (const auto& [key, dst] : ids) {
    if (file.find(key) == nullptr) continue;
    OMNI_ASSIGN_OR_RETURN(uint32_t id, file.get_u32(key));
    if (id >= v.pieces.size())
      return corrupt_file(fmt("tokenizer: %s = %u is outside the vocabulary of %zu", key, id, v.pieces.size()));
    *dst = static_cast<int32_t>(id);
  }
  const bool spm = v.kind == TokenizerKind::kSpm;
  OMNI_ASSIGN_OR_RETURN(v.add_bos, file.get_bool_or("tokenizer.ggml.add_bos_token", spm));
  OMNI_ASSIGN_OR_RETURN(v.add_eos, file.get_bool_or("tokenizer.ggml.add_eos_token", false));
  OMNI_ASSIGN_OR_RETURN(v.add_space_prefix, file.get_bool_or("tokenizer.ggml.add_space_prefix", spm));
  auto t = from_vocab(std::move(v));
  if (!t.ok() && t.status().code() == StatusCode::kInvalidArgument)
    return corrupt_file(t.status().message());  // bad metadata is a bad file, not a bad caller
  return t;
}

bool Tokenizer::is_end_of_generation(int32_t id) const {
  return std::binary_search(end_ids_.begin(), end_ids_.end(), id);
}

bool Tokenizer::is_control(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return false;
  const TokenType t = types_[static_cast<size_t>(id)];
  return t == TokenType::kControl || t == TokenType::kUnknown || t == TokenType::kUnused;
}

int32_t Tokenizer::find_piece(std::string_view piece) const {
  if (piece_slots_.empty()) return -1;
  const size_t mask = piece_slots_.size() - 1;
  for (size_t h = std::hash<std::string_view>{}(piece) & mask;; h = (h + 1) & mask) {
    const int32_t id = piece_slots_[h];
    if (id < 0 || pieces_[static_cast<size_t>(id)] == piece) return id;
  }
}

void Tokenizer::push_bytes_fallback(std::string_view bytes, std::vector<int32_t>* out) const {
  for (unsigned char b : bytes) {
    if (byte_ids_[b] >= 0) {
      out->push_back(byte_ids_[b]);
    } else if (unk_ >= 0) {
      out->push_back(unk_);
    }
  }
}

StatusOr<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_bos, bool parse_special) const {
  size_t bad = 0;
  if (!utf8::valid(text, &bad))
    return invalid_argument(fmt("tokenizer: input is not valid UTF-8 at byte offset %zu (byte 0x%02x)", bad,
                                static_cast<unsigned>(static_cast<unsigned char>(text[bad]))));
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && bos_ >= 0) out.push_back(bos_);
  auto accept = [&](int32_t id) {
    return parse_special || types_[static_cast<size_t>(id)] == TokenType::kUserDefined;
  };
  bool after_special = true;  // the text start counts as "after a special token" (SPM space prefix)
  size_t start = 0;
  auto flush = [&](size_t end) -> Status {
    if (end > start) {
      const std::string_view run = text.substr(start, end - start);
      if (kind_ == TokenizerKind::kSpm) {
        encode_spm(run, after_special, &out);
      } else {
        OMNI_RETURN_IF_ERROR(encode_bpe(run, &out));
      }
      after_special = false;
    }
    return Status::Ok();
  };
  for (size_t i = 0; i < text.size();) {
    int32_t id = -1;
    const size_t len = specials_->match(text, i, accept, &id);
    if (len == 0) {
      ++i;
      continue;
    }
    OMNI_RETURN_IF_ERROR(flush(i));
    out.push_back(id);
    after_special = true;
    i += len;
    start = i;
  }
  OMNI_RETURN_IF_ERROR(flush(text.size()));
  if (add_bos && add_eos_ && eos_ >= 0) out.push_back(eos_);
  return out;
}

StatusOr<std::string> Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= n_vocab())
    return out_of_range(fmt("tokenizer: token id %d is outside the vocabulary [0, %d)", id, n_vocab()));
  const std::string& p = pieces_[static_cast<size_t>(id)];
  const TokenType ty = types_[static_cast<size_t>(id)];
  if (ty == TokenType::kControl || ty == TokenType::kUnknown || ty == TokenType::kUserDefined ||
      ty == TokenType::kUnused)
    return p;  // stored as raw text
  if (kind_ == TokenizerKind::kSpm) {
    if (ty == TokenType::kByte) {
      int value = 0;
      if (p.size() == 6 && utf8::parse_hex2(p.data() + 3, &value)) return std::string(1, static_cast<char>(value));
      return p;
    }
    std::string s;
    s.reserve(p.size());
    for (size_t i = 0; i < p.size();) {
      if (p.compare(i, 3, utf8::kSpmSpace) == 0) {
        s.push_back(' ');
        i += 3;
      } else {
        s.push_back(p[i++]);
      }
    }
    return s;
  }
  return utf8::bytes_from_gpt2_alphabet(p);
}

StatusOr<std::string> Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  std::string s;
  bool first = true;
  for (int32_t id : ids) {
    OMNI_ASSIGN_OR_RETURN(std::string b, token_bytes(id));
    if (!render_special && is_control(id)) continue;
    // SentencePiece drops the space it prepended: one leading space of the first rendered token.
    if (first && add_space_prefix_ && !b.empty() && b[0] == ' ' &&
        types_[static_cast<size_t>(id)] == TokenType::kNormal)
      b.erase(0, 1);
    first = false;
    s += b;
  }
  return s;
}

StatusOr<std::string> StreamDetokenizer::push(int32_t id) {
  OMNI_ASSIGN_OR_RETURN(std::string b, tok_->token_bytes(id));
  if (tok_->is_control(id)) return std::string();
  if (at_start_ && tok_->add_space_prefix() && !b.empty() && b[0] == ' ' &&
      tok_->token_type(id) == TokenType::kNormal)
    b.erase(0, 1);
  at_start_ = false;
  pending_ += b;
  // Emit everything up to the last complete UTF-8 sequence; an invalid prefix byte is replaced.
  std::string out;
  size_t i = 0;
  while (i < pending_.size()) {
    const size_t need = utf8::sequence_length(static_cast<unsigned char>(pending_[i]));
    if (need == 0) {  // stray continuation or invalid lead byte
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (i + need > pending_.size()) {
      // Incomplete: hold it, unless the bytes present already cannot continue it.
      if (utf8::valid_prefix(std::string_view(pending_).substr(i))) break;
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    if (!utf8::valid(std::string_view(pending_).substr(i, need))) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    out.append(pending_, i, need);
    i += need;
  }
  pending_.erase(0, i);
  return out;
}

std::string StreamDetokenizer::flush() {
  std::string out;
  if (!pending_.empty()) out = "\xEF\xBF\xBD";  // an incomplete sequence at the end of the stream
  pending_.clear();
  at_start_ = true;
  return out;
}

}  // namespace omni

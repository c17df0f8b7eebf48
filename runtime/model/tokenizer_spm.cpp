// SentencePiece-style (BPE-by-score) segmentation, as llama.cpp's llm_tokenizer_spm does it:
// start from UTF-8 characters, repeatedly merge the adjacent pair whose concatenation is a
// vocabulary piece with the highest score (ties: leftmost), then map characters that are not
// pieces to <0xNN> byte tokens.
#include <queue>

#include "runtime/model/tokenizer.h"
#include "runtime/model/tokenizer_utf8.h"

namespace omni {
namespace {

struct Symbol {
  int32_t prev, next;
  size_t offset, size;  // bytes of the escaped text; size 0 once merged into its left neighbour
};

struct Bigram {
  float score;
  int32_t left, right;
  size_t size;  // left.size + right.size when queued; a mismatch later means the pair is stale
  bool operator<(const Bigram& o) const {  // std::priority_queue pops the largest
    return score < o.score || (score == o.score && left > o.left);
  }
};

}  // namespace

void Tokenizer::encode_spm(std::string_view text, bool after_special, std::vector<int32_t>* out) const {
  // Escape: optional leading "▁", every ' ' -> "▁".
  std::string s;
  s.reserve(text.size() + 8);
  if (add_space_prefix_ && after_special) s += utf8::kSpmSpace;
  for (char c : text) {
    if (c == ' ') s += utf8::kSpmSpace;
    else s.push_back(c);
  }

  std::vector<Symbol> sym;
  sym.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = std::min(std::max<size_t>(utf8::sequence_length(static_cast<unsigned char>(s[i])), 1),
                              s.size() - i);
    const auto idx = static_cast<int32_t>(sym.size());
    sym.push_back({idx - 1, idx + 1, i, n});
    i += n;
  }
  if (sym.empty()) return;
  sym.back().next = -1;

  // Merges may only produce ordinary pieces (as SentencePiece: not control, byte or unused ones).
  auto mergeable = [&](std::string_view piece, int32_t* id) {
    const int32_t found = find_piece(piece);
    if (found < 0) return false;
    const TokenType t = types_[static_cast<size_t>(found)];
    if (t != TokenType::kNormal && t != TokenType::kUserDefined) return false;
    *id = found;
    return true;
  };
  std::priority_queue<Bigram> queue;
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Symbol& l = sym[static_cast<size_t>(left)];
    const Symbol& r = sym[static_cast<size_t>(right)];
    int32_t id = -1;
    if (!mergeable(std::string_view(s).substr(l.offset, l.size + r.size), &id)) return;
    queue.push({scores_[static_cast<size_t>(id)], left, right, l.size + r.size});
  };
  for (size_t i = 1; i < sym.size(); ++i) try_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = sym[static_cast<size_t>(b.left)];
    Symbol& r = sym[static_cast<size_t>(b.right)];
    if (l.size == 0 || r.size == 0 || l.size + r.size != b.size) continue;
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
    int32_t id = -1;
    if (mergeable(piece, &id)) {
      out->push_back(id);
    } else {
      push_bytes_fallback(piece, out);  // only single characters reach here
    }
  }
}

}  // namespace omni

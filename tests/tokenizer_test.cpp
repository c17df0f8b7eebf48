// Tokenizer tests. Expected ids come from independent references recorded by
// tools/make_tokenizer_fixtures.py (sentencepiece, HF tokenizers, transformers) in
// tests/data/tokenizer/vectors.json; chat strings are written out from the model cards' formats.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>

#include "runtime/model/gguf.h"
#include "runtime/model/tokenizer.h"

namespace omni {
namespace {

// ---- a minimal JSON reader (objects, arrays, strings with \u escapes, numbers, literals) ----
struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<Json> arr;
  std::vector<std::pair<std::string, Json>> obj;
  const Json* get(const std::string& k) const {
    for (const auto& [key, v] : obj) if (key == k) return &v;
    return nullptr;
  }
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& s) : s_(s) {}
  bool parse(Json* out) { return value(out) && (ws(), i_ == s_.size()); }

 private:
  void ws() { while (i_ < s_.size() && isspace(static_cast<unsigned char>(s_[i_]))) ++i_; }
  bool lit(const char* w) {
    const size_t n = strlen(w);
    if (s_.compare(i_, n, w) != 0) return false;
    i_ += n;
    return true;
  }
  bool hex4(uint32_t* v) {
    if (i_ + 4 > s_.size()) return false;
    *v = static_cast<uint32_t>(std::stoul(s_.substr(i_, 4), nullptr, 16));
    i_ += 4;
    return true;
  }
  static void put(std::string* o, uint32_t cp) {
    if (cp < 0x80) { o->push_back(static_cast<char>(cp)); }
    else if (cp < 0x800) { o->push_back(static_cast<char>(0xC0 | (cp >> 6))); o->push_back(static_cast<char>(0x80 | (cp & 0x3F))); }
    else if (cp < 0x10000) { o->push_back(static_cast<char>(0xE0 | (cp >> 12))); o->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F))); o->push_back(static_cast<char>(0x80 | (cp & 0x3F))); }
    else { o->push_back(static_cast<char>(0xF0 | (cp >> 18))); o->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F))); o->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F))); o->push_back(static_cast<char>(0x80 | (cp & 0x3F))); }
  }
  bool string(std::string* o) {
    if (s_[i_] != '"') return false;
    ++i_;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c != '\\') { o->push_back(c); continue; }
      c = s_[i_++];
      switch (c) {
        case 'n': o->push_back('\n'); break;
        case 't': o->push_back('\t'); break;
        case 'r': o->push_back('\r'); break;
        case 'b': o->push_back('\b'); break;
        case 'f': o->push_back('\f'); break;
        case 'u': {
          uint32_t cp;
          if (!hex4(&cp)) return false;
          if (cp >= 0xD800 && cp < 0xDC00 && s_.compare(i_, 2, "\\u") == 0) {
            i_ += 2;
            uint32_t lo;
            if (!hex4(&lo)) return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put(o, cp);
          break;
        }
        default: o->push_back(c);
      }
    }
    return i_++ < s_.size();
  }
  bool value(Json* v) {
    ws();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '{') {
      v->kind = Json::kObject;
      ++i_;
      ws();
      if (s_[i_] == '}') { ++i_; return true; }
      for (;;) {
        ws();
        std::string k;
        if (!string(&k)) return false;
        ws();
        if (s_[i_++] != ':') return false;
        v->obj.emplace_back(std::move(k), Json{});
        if (!value(&v->obj.back().second)) return false;
        ws();
        if (s_[i_] == ',') { ++i_; continue; }
        return s_[i_++] == '}';
      }
    }
    if (c == '[') {
      v->kind = Json::kArray;
      ++i_;
      ws();
      if (s_[i_] == ']') { ++i_; return true; }
      for (;;) {
        v->arr.emplace_back();
        if (!value(&v->arr.back())) return false;
        ws();
        if (s_[i_] == ',') { ++i_; continue; }
        return s_[i_++] == ']';
      }
    }
    if (c == '"') { v->kind = Json::kString; return string(&v->str); }
    if (lit("true")) { v->kind = Json::kBool; v->b = true; return true; }
    if (lit("false")) { v->kind = Json::kBool; return true; }
    if (lit("null")) return true;
    size_t n = 0;
    v->kind = Json::kNumber;
    v->num = std::stod(s_.substr(i_, 32), &n);
    i_ += n;
    return n > 0;
  }
  const std::string& s_;
  size_t i_ = 0;
};

const std::string kSrc = OMNIRT_SOURCE_DIR;

const Json& vectors() {
  static const Json root = [] {
    std::ifstream f(kSrc + "/tests/data/tokenizer/vectors.json");
    std::stringstream ss;
    ss << f.rdbuf();
    Json j;
    const std::string text = ss.str();
    if (!JsonParser(text).parse(&j)) j = Json{};
    return j;
  }();
  return root;
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

std::string show(const std::string& s) {
  std::string o;
  for (unsigned char c : s) {
    if (c == '\n') o += "\\n";
    else if (c == '\t') o += "\\t";
    else if (c == '\r') o += "\\r";
    else o.push_back(static_cast<char>(c));
  }
  return o;
}

struct Loaded {
  std::unique_ptr<gguf::GgufFile> file;
  std::unique_ptr<Tokenizer> tok;
};

// Opens the GGUF named by vectors.json's entry; empty result with *skip set when absent.
Loaded load(const std::string& name, std::string* skip) {
  Loaded l;
  const Json* t = vectors().get("tokenizers");
  const Json* e = t == nullptr ? nullptr : t->get(name);
  if (e == nullptr) {
    *skip = "vectors.json has no entry '" + name + "'";
    return l;
  }
  const std::string path = kSrc + "/" + e->get("gguf")->str;
  if (FILE* f = fopen(path.c_str(), "rb")) {
    fclose(f);
  } else {
    *skip = path + " not present";
    return l;
  }
  auto file = gguf::GgufFile::open(path);
  EXPECT_TRUE(file.ok()) << file.status().to_string();
  if (!file.ok()) return l;
  l.file = std::move(file).value();
  auto tok = Tokenizer::from_gguf(*l.file);
  EXPECT_TRUE(tok.ok()) << tok.status().to_string();
  if (tok.ok()) l.tok = std::move(tok).value();
  return l;
}

void check_vectors(const std::string& name) {
  ASSERT_EQ(vectors().kind, Json::kObject) << "tests/data/tokenizer/vectors.json missing or unparsable";
  std::string skip;
  Loaded l = load(name, &skip);
  if (!skip.empty()) GTEST_SKIP() << "skipping " << name << ": " << skip;
  ASSERT_NE(l.tok, nullptr);
  const Tokenizer& tok = *l.tok;
  const Json& vec = *vectors().get("tokenizers")->get(name)->get("vectors");
  ASSERT_GT(vec.arr.size(), 20u);
  for (const Json& v : vec.arr) {
    const std::string& text = v.get("text")->str;
    const bool ps = v.get("parse_special")->b;
    std::vector<int32_t> want;
    for (const Json& x : v.get("ids")->arr) want.push_back(static_cast<int32_t>(x.num));
    SCOPED_TRACE(name + " text='" + show(text) + "' parse_special=" + (ps ? "1" : "0"));
    auto got = tok.encode(text, /*add_bos=*/false, ps);
    ASSERT_TRUE(got.ok()) << got.status().to_string();
    EXPECT_EQ(got.value(), want);

    // Round trip: with control tokens rendered the text comes back byte for byte.
    auto back = tok.decode(want, /*render_special=*/true);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(show(back.value()), show(text));
    // Streaming equals decode() and every chunk is whole UTF-8.
    auto plain = tok.decode(want);
    ASSERT_TRUE(plain.ok());
    StreamDetokenizer stream(tok);
    std::string streamed;
    for (int32_t id : want) {
      auto chunk = stream.push(id);
      ASSERT_TRUE(chunk.ok());
      EXPECT_TRUE(valid_utf8(chunk.value())) << "partial UTF-8 emitted after id " << id;
      streamed += chunk.value();
    }
    streamed += stream.flush();
    EXPECT_EQ(show(streamed), show(plain.value()));
  }
}

TEST(TokenizerVectors, SentencePieceBpeMatchesSentencepiece) { check_vectors("spm"); }
TEST(TokenizerVectors, Gpt2MatchesHfTokenizers) { check_vectors("gpt2"); }
TEST(TokenizerVectors, Llama3MatchesHfTokenizers) { check_vectors("llama3"); }
TEST(TokenizerVectors, Qwen2MatchesHfTokenizers) { check_vectors("qwen2"); }
TEST(TokenizerVectors, Gemma3MatchesTransformers) { check_vectors("gemma3"); }

TEST(TokenizerGemma3, MetadataBosAndEndOfGeneration) {
  std::string skip;
  Loaded l = load("gemma3", &skip);
  if (!skip.empty()) GTEST_SKIP() << "skipping: " << skip;
  ASSERT_NE(l.tok, nullptr);
  const Tokenizer& tok = *l.tok;
  EXPECT_EQ(tok.kind(), TokenizerKind::kSpm);
  EXPECT_EQ(tok.n_vocab(), 262144);
  EXPECT_EQ(tok.bos(), 2);
  EXPECT_EQ(tok.eos(), 1);
  EXPECT_TRUE(tok.add_bos());
  EXPECT_FALSE(tok.add_space_prefix());
  const Json* wb = vectors().get("tokenizers")->get("gemma3")->get("with_bos");
  ASSERT_NE(wb, nullptr);
  std::vector<int32_t> want;
  for (const Json& x : wb->get("ids")->arr) want.push_back(static_cast<int32_t>(x.num));
  auto got = tok.encode(wb->get("text")->str, tok.add_bos(), true);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got.value(), want);
  const int32_t eot = tok.find_piece("<end_of_turn>");
  ASSERT_GE(eot, 0);
  EXPECT_TRUE(tok.is_end_of_generation(eot));
  EXPECT_TRUE(tok.is_end_of_generation(tok.eos()));
  EXPECT_FALSE(tok.is_end_of_generation(tok.find_piece("<start_of_turn>")));
  EXPECT_TRUE(tok.is_control(tok.bos()));
  EXPECT_EQ(detect_chat_template(*l.file, tok), ChatTemplate::kGemma);

  // Runs of spaces: the longest user-defined space piece wins, as in SentencePiece and llama.cpp
  // (HF's Gemma tokenizer splits 40 spaces as 16 + 24 instead; see docs/TOKENIZER.md).
  const int32_t sp31 = tok.find_piece(std::string(31, ' '));
  const int32_t sp9 = tok.find_piece(std::string(9, ' '));
  ASSERT_GE(sp31, 0);
  ASSERT_GE(sp9, 0);
  EXPECT_EQ(tok.token_type(sp31), TokenType::kUserDefined);
  EXPECT_EQ(tok.find_piece(std::string(32, ' ')), -1);
  got = tok.encode(std::string(40, ' '), false, false);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got.value(), (std::vector<int32_t>{sp31, sp9}));

  // A long mixed input round-trips (and stays fast enough to run in the suite).
  std::string big;
  while (big.size() < 200000) big += "Tokenizer stress: café 東京 🚀 x=42;\n\tindent   spaces ";
  got = tok.encode(big, false, false);
  ASSERT_TRUE(got.ok());
  EXPECT_LT(got.value().size(), big.size() / 2);
  auto back = tok.decode(got.value());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back.value(), big);
}

TEST(TokenizerChat, DetectFromArchitectureAndPieces) {
  for (const auto& [name, want] : std::vector<std::pair<std::string, ChatTemplate>>{
           {"llama3", ChatTemplate::kLlama3}, {"qwen2", ChatTemplate::kChatML}, {"spm", ChatTemplate::kNone}}) {
    std::string skip;
    Loaded l = load(name, &skip);
    ASSERT_TRUE(skip.empty()) << skip;
    ASSERT_NE(l.tok, nullptr);
    EXPECT_EQ(detect_chat_template(*l.file, *l.tok), want) << name;
  }
}

// ---- in-memory vocabularies: behaviour worked out by hand ----
TokenizerVocab tiny_spm() {
  TokenizerVocab v;
  v.kind = TokenizerKind::kSpm;
  v.pieces = {"<unk>", "<s>", "</s>", "▁", "a", "b", "c", "ab", "bc", "▁a", "<ctl>", "<ud>"};
  v.scores = {0, 0, 0, -1, -1, -1, -1, -2, -2, -3, 0, 0};
  v.types = {2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 3, 4};
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    snprintf(buf, sizeof(buf), "<0x%02X>", b);
    v.pieces.push_back(buf);
    v.scores.push_back(0);
    v.types.push_back(6);
  }
  v.unk = 0;
  v.bos = 1;
  v.eos = 2;
  v.add_bos = true;
  v.add_space_prefix = true;
  return v;
}
int32_t byte_id(uint8_t b) { return 12 + b; }

TEST(TokenizerSpm, TieBreaksLeftmostAndByteFallback) {
  auto t = Tokenizer::from_vocab(tiny_spm());
  ASSERT_TRUE(t.ok()) << t.status().to_string();
  const Tokenizer& tok = *t.value();
  // "▁abc": "ab" and "bc" both score -2, the leftmost merges first -> ▁, ab, c.
  auto ids = tok.encode("abc", false, false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids.value(), (std::vector<int32_t>{3, 7, 6}));
  // "▁a" (-3) loses to nothing here: "▁" + "a" merge only when no better pair exists.
  ids = tok.encode("a", true, false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids.value(), (std::vector<int32_t>{1, 9}));
  // "é" is not a piece: two byte tokens; decode restores it and drops the prefix space.
  ids = tok.encode("é", false, false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids.value(), (std::vector<int32_t>{3, byte_id(0xC3), byte_id(0xA9)}));
  auto text = tok.decode(ids.value());
  ASSERT_TRUE(text.ok());
  EXPECT_EQ(text.value(), "é");
}

TEST(TokenizerSpm, SpecialTokensUserDefinedAlwaysControlOnlyWhenParsing) {
  auto t = Tokenizer::from_vocab(tiny_spm());
  ASSERT_TRUE(t.ok());
  const Tokenizer& tok = *t.value();
  auto ids = tok.encode("<ud>", false, false);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids.value(), (std::vector<int32_t>{11}));
  ids = tok.encode("<ctl>a", false, true);
  ASSERT_TRUE(ids.ok());
  EXPECT_EQ(ids.value(), (std::vector<int32_t>{10, 9}));  // space prefix again after a special token
  ids = tok.encode("<ctl>", false, false);
  ASSERT_TRUE(ids.ok());
  EXPECT_NE(ids.value(), (std::vector<int32_t>{10}));
  auto dec = tok.decode(std::vector<int32_t>{1, 10, 9});
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(dec.value(), "a");  // control tokens skipped, first space dropped
  dec = tok.decode(std::vector<int32_t>{10, 9}, true);
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(dec.value(), "<ctl> a");
}

TEST(TokenizerErrors, InvalidUtf8NamesTheOffset) {
  auto t = Tokenizer::from_vocab(tiny_spm());
  ASSERT_TRUE(t.ok());
  const Tokenizer& tok = *t.value();
  const std::pair<std::string, size_t> bad[] = {
      {"abc\xff", 3}, {"\x80", 0}, {"ok\xC0\xAF", 2}, {"x\xED\xA0\x80", 1}, {"ab\xE2\x82", 2},
      {"\xF4\x90\x80\x80", 0}, {"\xE0\x80\x80", 0}};
  for (const auto& [s, off] : bad) {
    auto r = tok.encode(s, false, false);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find("byte offset " + std::to_string(off)), std::string::npos)
        << r.status().message();
  }
}

TEST(TokenizerErrors, OutOfRangeIds) {
  auto t = Tokenizer::from_vocab(tiny_spm());
  ASSERT_TRUE(t.ok());
  const Tokenizer& tok = *t.value();
  for (int32_t id : {-1, tok.n_vocab(), 1 << 30}) {
    EXPECT_EQ(tok.token_bytes(id).status().code(), StatusCode::kOutOfRange);
    EXPECT_EQ(tok.decode(std::vector<int32_t>{4, id}).status().code(), StatusCode::kOutOfRange);
    StreamDetokenizer s(tok);
    EXPECT_EQ(s.push(id).status().code(), StatusCode::kOutOfRange);
  }
}

TEST(TokenizerErrors, BadVocabularyRejected) {
  TokenizerVocab v = tiny_spm();
  v.bos = 100000;
  EXPECT_EQ(Tokenizer::from_vocab(v).status().code(), StatusCode::kInvalidArgument);
  v = tiny_spm();
  v.scores.pop_back();
  EXPECT_EQ(Tokenizer::from_vocab(v).status().code(), StatusCode::kInvalidArgument);
  v = tiny_spm();
  v.types[4] = 9;
  EXPECT_EQ(Tokenizer::from_vocab(v).status().code(), StatusCode::kInvalidArgument);
  TokenizerVocab b;
  b.kind = TokenizerKind::kBpe;
  b.pre = "gpt2";
  b.pieces = {"a", "b", "ab"};
  b.merges = {"ab"};
  EXPECT_EQ(Tokenizer::from_vocab(b).status().code(), StatusCode::kInvalidArgument);
  b.merges = {"a b"};
  b.pre = "no-such-pre";
  EXPECT_EQ(Tokenizer::from_vocab(b).status().code(), StatusCode::kUnsupported);
}

TEST(TokenizerStream, HoldsPartialUtf8UntilComplete) {
  auto t = Tokenizer::from_vocab(tiny_spm());
  ASSERT_TRUE(t.ok());
  const Tokenizer& tok = *t.value();
  StreamDetokenizer s(tok);
  // 😀 = F0 9F 98 80, fed one byte token at a time.
  const uint8_t emoji[] = {0xF0, 0x9F, 0x98, 0x80};
  for (int i = 0; i < 3; ++i) {
    auto r = s.push(byte_id(emoji[i]));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.value(), "");
  }
  auto r = s.push(byte_id(emoji[3]));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), "\xF0\x9F\x98\x80");
  EXPECT_EQ(s.flush(), "");
  // A sequence cut short by a byte that cannot continue it: U+FFFD, then the new character.
  ASSERT_TRUE(s.push(byte_id(0xE2)).ok());
  r = s.push(4);  // "a"
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), "\xEF\xBF\xBD" "a");
  // Dangling bytes at the end of the stream become U+FFFD.
  ASSERT_TRUE(s.push(byte_id(0xC3)).ok());
  EXPECT_EQ(s.flush(), "\xEF\xBF\xBD");
}

// ---- chat templates, from the model cards' formats ----
std::vector<ChatMessage> convo() {
  return {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", " 2+2? "}};
}

TEST(TokenizerChat, Gemma) {
  auto s = apply_chat_template(ChatTemplate::kGemma, convo(), true);
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s.value(),
            "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
            "<start_of_turn>model\nHello!<end_of_turn>\n"
            "<start_of_turn>user\n2+2?<end_of_turn>\n"
            "<start_of_turn>model\n");
  auto bad = apply_chat_template(ChatTemplate::kGemma, {{"user", "a"}, {"user", "b"}}, true);
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST(TokenizerChat, ChatML) {
  auto s = apply_chat_template(ChatTemplate::kChatML, convo(), true);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s.value(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n 2+2? <|im_end|>\n"
            "<|im_start|>assistant\n");
  s = apply_chat_template(ChatTemplate::kChatML, {{"user", "x"}}, false);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s.value(), "<|im_start|>user\nx<|im_end|>\n");
}

TEST(TokenizerChat, Llama3) {
  auto s = apply_chat_template(ChatTemplate::kLlama3, convo(), true);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s.value(),
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(TokenizerChat, NamesAndErrors) {
  ChatTemplate t = ChatTemplate::kNone;
  EXPECT_TRUE(chat_template_from_name("chatml", &t));
  EXPECT_EQ(t, ChatTemplate::kChatML);
  EXPECT_STREQ(chat_template_name(ChatTemplate::kLlama3), "llama3");
  EXPECT_FALSE(chat_template_from_name("vicuna", &t));
  EXPECT_EQ(apply_chat_template(ChatTemplate::kChatML, {{"tool", "x"}}, true).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(apply_chat_template(ChatTemplate::kNone, convo(), true).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace omni

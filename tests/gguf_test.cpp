// GGUF reader/writer tests. Expectations come from the gguf package (tools/make_gguf_fixtures.py):
// good files and their JSON were written and re-read by gguf-py; bad files each carry one defect
// and bad/expected.txt names the code and message we must give; writer_reference.gguf is gguf-py's
// GGUFWriter output for the content GgufWriterTest.MatchesGgufPyBytes builds.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "runtime/model/gguf.h"

namespace omni::gguf {
namespace {

const std::string kDir = std::string(OMNIRT_SOURCE_DIR) + "/tests/data/gguf/";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// ---- a minimal JSON reader (numbers kept as text so u64/i64 extremes survive) ----------------

struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = kNull;
  std::string text;  // number literal or decoded string
  bool boolean = false;
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> members;

  const Json& operator[](const std::string& k) const {
    for (const auto& [name, v] : members)
      if (name == k) return v;
    static const Json kMissing;
    ADD_FAILURE() << "JSON key missing: " << k;
    return kMissing;
  }
  uint64_t u64() const { return std::strtoull(text.c_str(), nullptr, 10); }
  int64_t i64() const { return std::strtoll(text.c_str(), nullptr, 10); }
};

class JsonParser {
 public:
  explicit JsonParser(std::string s) : s_(std::move(s)) {}
  Json parse() {
    Json j = value();
    ws();
    EXPECT_EQ(p_, s_.size()) << "trailing JSON";
    return j;
  }

 private:
  void ws() {
    while (p_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[p_]))) ++p_;
  }
  static void put_utf8(std::string* o, uint32_t c) {
    if (c < 0x80) {
      o->push_back(char(c));
    } else if (c < 0x800) {
      o->push_back(char(0xC0 | (c >> 6)));
      o->push_back(char(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      o->push_back(char(0xE0 | (c >> 12)));
      o->push_back(char(0x80 | ((c >> 6) & 0x3F)));
      o->push_back(char(0x80 | (c & 0x3F)));
    } else {
      o->push_back(char(0xF0 | (c >> 18)));
      o->push_back(char(0x80 | ((c >> 12) & 0x3F)));
      o->push_back(char(0x80 | ((c >> 6) & 0x3F)));
      o->push_back(char(0x80 | (c & 0x3F)));
    }
  }
  std::string string() {
    std::string out;
    ++p_;  // opening quote
    while (p_ < s_.size() && s_[p_] != '"') {
      char c = s_[p_++];
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      char e = s_[p_++];
      switch (e) {
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'u': {
          uint32_t c1 = std::stoul(s_.substr(p_, 4), nullptr, 16);
          p_ += 4;
          if (c1 >= 0xD800 && c1 < 0xDC00) {  // surrogate pair
            uint32_t c2 = std::stoul(s_.substr(p_ + 2, 4), nullptr, 16);
            p_ += 6;
            c1 = 0x10000 + ((c1 - 0xD800) << 10) + (c2 - 0xDC00);
          }
          put_utf8(&out, c1);
          break;
        }
        default: out.push_back(e);  // \" \\ \/
      }
    }
    ++p_;  // closing quote
    return out;
  }
  Json value() {
    ws();
    Json j;
    char c = s_[p_];
    if (c == '{') {
      j.kind = Json::kObject;
      ++p_;
      ws();
      while (s_[p_] != '}') {
        ws();
        std::string k = string();
        ws();
        ++p_;  // ':'
        j.members.emplace_back(k, value());
        ws();
        if (s_[p_] == ',') ++p_;
        ws();
      }
      ++p_;
    } else if (c == '[') {
      j.kind = Json::kArray;
      ++p_;
      ws();
      while (s_[p_] != ']') {
        j.items.push_back(value());
        ws();
        if (s_[p_] == ',') ++p_;
        ws();
      }
      ++p_;
    } else if (c == '"') {
      j.kind = Json::kString;
      j.text = string();
    } else if (s_.compare(p_, 4, "true") == 0 || s_.compare(p_, 5, "false") == 0) {
      j.kind = Json::kBool;
      j.boolean = s_[p_] == 't';
      p_ += j.boolean ? 4 : 5;
    } else if (s_.compare(p_, 4, "null") == 0) {
      p_ += 4;
    } else {
      j.kind = Json::kNumber;
      size_t b = p_;
      while (p_ < s_.size() && std::strchr("+-0123456789.eE", s_[p_])) ++p_;
      j.text = s_.substr(b, p_ - b);
    }
    return j;
  }
  std::string s_;
  size_t p_ = 0;
};

Json load_json(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return JsonParser(ss.str()).parse();
}

double json_float(const Json& j) {
  if (j.kind == Json::kString) {
    if (j.text == "nan") return NAN;
    return j.text == "inf" ? INFINITY : -INFINITY;
  }
  return std::strtod(j.text.c_str(), nullptr);
}

// Same value, bit for bit (so -0.0 != 0.0), NaN equal to NaN.
void expect_same_float(double want, double got, const std::string& where) {
  if (std::isnan(want)) {
    EXPECT_TRUE(std::isnan(got)) << where;
    return;
  }
  EXPECT_EQ(want, got) << where;
  EXPECT_EQ(std::signbit(want), std::signbit(got)) << where;
}

bool is_unsigned(const std::string& t) { return t == "u8" || t == "u16" || t == "u32" || t == "u64"; }
bool is_signed(const std::string& t) { return t == "i8" || t == "i16" || t == "i32" || t == "i64"; }

// An array value: {"elem_type": ..., "value": [...]}.
void expect_array(const Json& want, const Value& v, const std::string& where) {
  ASSERT_EQ(v.type, ValueType::kArray) << where;
  const std::string et = want["elem_type"].text;
  ASSERT_EQ(et, value_type_name(v.elem_type)) << where;
  const auto& items = want["value"].items;
  ASSERT_EQ(items.size(), v.n_elems) << where;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::string w = where + "[" + std::to_string(i) + "]";
    if (is_unsigned(et)) {
      EXPECT_EQ(items[i].u64(), static_cast<uint64_t>(v.array_i64(i))) << w;
    } else if (is_signed(et)) {
      EXPECT_EQ(items[i].i64(), v.array_i64(i)) << w;
    } else if (et == "f32" || et == "f64") {
      expect_same_float(json_float(items[i]), v.array_f64(i), w);
    } else if (et == "bool") {
      EXPECT_EQ(items[i].boolean ? 1 : 0, v.array_i64(i)) << w;
    } else if (et == "string") {
      ASSERT_EQ(v.strings.size(), items.size()) << w;
      EXPECT_EQ(items[i].text, v.strings[i]) << w;
    } else {
      ASSERT_EQ(et, "array");
      ASSERT_EQ(v.elements.size(), items.size()) << w;
      expect_array(items[i], v.elements[i], w);
    }
  }
}

void expect_value(const Json& want, const Value& v, const std::string& key) {
  const std::string t = want["type"].text;
  ASSERT_EQ(t, value_type_name(v.type)) << key;
  if (t == "array") return expect_array(want, v, key);
  const Json& j = want["value"];
  if (is_unsigned(t)) EXPECT_EQ(j.u64(), v.scalar.u) << key;
  else if (is_signed(t)) EXPECT_EQ(j.i64(), v.scalar.i) << key;
  else if (t == "f32" || t == "f64") expect_same_float(json_float(j), v.scalar.f, key);
  else if (t == "bool") EXPECT_EQ(j.boolean ? 1u : 0u, v.scalar.u) << key;
  else if (t == "string") EXPECT_EQ(j.text, v.str) << key;
  else ADD_FAILURE() << "unexpected type " << t;
}

std::string to_hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(d[p[i] >> 4]);
    s.push_back(d[p[i] & 15]);
  }
  return s;
}

// ---- good files ------------------------------------------------------------------------------

class GoodFixture : public ::testing::TestWithParam<const char*> {};

TEST_P(GoodFixture, MatchesGgufPy) {
  const std::string base = kDir + GetParam();
  const Json want = load_json(base + ".json");
  auto f = GgufFile::open(base + ".gguf");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  const GgufFile& g = **f;
  EXPECT_EQ(want["version"].u64(), g.version());
  EXPECT_EQ(want["alignment"].u64(), g.alignment());
  EXPECT_EQ(want["file_size"].u64(), g.file_size());

  const auto& kvs = want["kv"].items;
  ASSERT_EQ(kvs.size(), g.metadata().size());
  for (size_t i = 0; i < kvs.size(); ++i) {
    const std::string key = kvs[i]["key"].text;
    EXPECT_EQ(key, g.metadata()[i].key) << "key order at " << i;
    const Value* v = g.find(key);
    ASSERT_NE(v, nullptr) << key;
    expect_value(kvs[i], *v, key);
    EXPECT_FALSE(v->to_string().empty());
  }

  const auto& ts = want["tensors"].items;
  ASSERT_EQ(ts.size(), g.tensors().size());
  for (size_t i = 0; i < ts.size(); ++i) {
    const TensorInfo& t = g.tensors()[i];
    const std::string name = ts[i]["name"].text;
    EXPECT_EQ(name, t.name);
    EXPECT_EQ(g.find_tensor(name), &t);
    EXPECT_EQ(ts[i]["type"].u64(), static_cast<uint64_t>(t.type)) << name;
    const auto& ne = ts[i]["ne"].items;
    ASSERT_EQ(ne.size(), t.n_dims) << name;
    for (size_t d = 0; d < 4; ++d) EXPECT_EQ(d < ne.size() ? ne[d].i64() : 1, t.ne[d]) << name << " ne[" << d << "]";
    EXPECT_EQ(ts[i]["offset"].u64(), t.offset) << name;
    EXPECT_EQ(ts[i]["n_bytes"].u64(), t.n_bytes) << name;
    EXPECT_EQ(g.data_section() + t.offset, t.data) << name;
    EXPECT_EQ(ts[i]["data_hex"].text, to_hex(t.data, t.n_bytes)) << name;
  }
  EXPECT_EQ(g.find_tensor("no.such.tensor"), nullptr);

  // from_memory agrees and places the data section where gguf-py's reader found it.
  const std::vector<uint8_t> bytes = read_bytes(base + ".gguf");
  auto m = GgufFile::from_memory(bytes.data(), bytes.size());
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  EXPECT_EQ(want["data_offset"].u64(), static_cast<uint64_t>((*m)->data_section() - bytes.data()));
}

INSTANTIATE_TEST_SUITE_P(Gguf, GoodFixture,
                         ::testing::Values("good_v3_types", "good_v3_llama", "good_v2_llama"));

TEST(GgufReaderTest, TypedGetters) {
  auto f = GgufFile::open(kDir + "good_v3_types.gguf");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  const GgufFile& g = **f;
  EXPECT_EQ(*g.get_u32("t.u8"), 255u);
  EXPECT_EQ(*g.get_u32("t.u32"), 4294967295u);
  EXPECT_EQ(*g.get_i32("t.i8"), -128);
  EXPECT_EQ(*g.get_i32("t.i32"), INT32_MIN);
  EXPECT_EQ(*g.get_u64("t.u64"), UINT64_MAX);
  EXPECT_EQ(*g.get_u64("general.alignment"), 64u);
  EXPECT_EQ(*g.get_f32("t.f32"), 3.14159f);
  EXPECT_EQ(*g.get_f32("t.u16"), 65535.0f);
  EXPECT_EQ(*g.get_f32("t.i32"), -2147483648.0f);
  EXPECT_TRUE(std::isinf(*g.get_f32("t.f32_inf")));
  EXPECT_TRUE(*g.get_bool("t.bool_true"));
  EXPECT_FALSE(*g.get_bool("t.bool_false"));
  EXPECT_EQ(*g.get_string("t.str_utf8"), "héllo wörld ✓ 日本語 🙂");
  EXPECT_EQ(*g.get_string("t.str_empty"), "");
  EXPECT_EQ(*g.get_string("general.architecture"), "test");

  // Out of range for the requested type: kCorruptFile naming the key and value.
  auto r1 = g.get_i32("t.u32");
  EXPECT_EQ(r1.status().code(), StatusCode::kCorruptFile);
  EXPECT_NE(r1.status().message().find("key 't.u32' value 4294967295 is out of range"), std::string::npos)
      << r1.status().message();
  EXPECT_EQ(g.get_u32("t.i8").status().code(), StatusCode::kCorruptFile);
  EXPECT_EQ(g.get_u64("t.i64").status().code(), StatusCode::kCorruptFile);
  auto r2 = g.get_u32("t.str");
  EXPECT_EQ(r2.status().code(), StatusCode::kCorruptFile);
  EXPECT_EQ(r2.status().message(), "key 't.str' has type string, expected an integer");
  EXPECT_EQ(g.get_bool("t.u8").status().code(), StatusCode::kCorruptFile);
  EXPECT_EQ(g.get_string("t.u8").status().code(), StatusCode::kCorruptFile);
  EXPECT_EQ(g.get_f32("t.str").status().code(), StatusCode::kCorruptFile);
  EXPECT_EQ(g.get_u32("t.arr.u32").status().message(), "key 't.arr.u32' has type array of u32, expected an integer");

  // Missing keys: kNotFound, or the default for the _or variants.
  EXPECT_EQ(g.get_string("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(*g.get_u32_or("nope", 7), 7u);
  EXPECT_EQ(*g.get_f32_or("nope", 0.5f), 0.5f);
  EXPECT_TRUE(*g.get_bool_or("nope", true));
  EXPECT_EQ(*g.get_string_or("nope", "d"), "d");
  EXPECT_EQ(*g.get_u32_or("t.u16", 7), 65535u);
  EXPECT_EQ(g.get_u32_or("t.str", 7).status().code(), StatusCode::kCorruptFile);

  // Arrays.
  auto strs = g.get_string_array("t.arr.str");
  ASSERT_TRUE(strs.ok());
  EXPECT_EQ(*strs, (std::vector<std::string_view>{"a", "", "ü", "<|im_start|>"}));
  auto fl = g.get_f32_array("t.arr.f32");
  ASSERT_TRUE(fl.ok());
  EXPECT_EQ(*fl, (std::vector<float>{0.5f, -1.25f, 1e30f, 3.3f}));
  EXPECT_EQ(*g.get_f32_array("t.arr.i16"), (std::vector<float>{-32768.f, 32767.f}));
  EXPECT_EQ(*g.get_i32_array("t.arr.i8"), (std::vector<int32_t>{-128, 0, 127}));
  EXPECT_EQ(*g.get_i32_array("t.arr.u16"), (std::vector<int32_t>{0, 65535}));
  auto bad = g.get_i32_array("t.arr.u32");
  EXPECT_EQ(bad.status().code(), StatusCode::kCorruptFile);
  EXPECT_NE(bad.status().message().find("element 2 = 4294967295 does not fit in i32"), std::string::npos)
      << bad.status().message();
  EXPECT_EQ(g.get_string_array("t.arr.i32").status().code(), StatusCode::kCorruptFile);
  EXPECT_EQ(g.get_f32_array("t.arr.str").status().code(), StatusCode::kCorruptFile);
  EXPECT_EQ(g.get_i32_array("t.arr.f32").status().code(), StatusCode::kCorruptFile);
  EXPECT_EQ(g.get_f32_array("t.u8").status().code(), StatusCode::kCorruptFile);

  // Rendering for `model inspect`.
  EXPECT_EQ(g.find("t.i8")->to_string(), "-128");
  EXPECT_EQ(g.find("t.u64")->to_string(), "18446744073709551615");
  EXPECT_EQ(g.find("t.bool_true")->to_string(), "true");
  EXPECT_EQ(g.find("t.str_escapes")->to_string(), "\"a\\nb\\\"c\\\\d\\x09e\"");
  EXPECT_EQ(g.find("t.arr.u8")->to_string(), "[0, 1, 255]");
  EXPECT_EQ(g.find("t.arr.u8")->to_string(2), "[0, 1, ... (3 u8)]");
  EXPECT_EQ(g.find("t.arr.nested")->to_string(), "[[1, 2], [3], [4, 5, 6]]");
  EXPECT_EQ(g.find("t.arr.str")->to_string(), "[\"a\", \"\", \"ü\", \"<|im_start|>\"]");
  EXPECT_EQ(g.find_tensor("w.f32_3d")->shape_string(), "[4, 3, 2]");
  EXPECT_EQ(g.find_tensor("w.q6_K")->n_elements(), 512);
}

TEST(GgufReaderTest, NestingAtTheDepthLimitIsAccepted) {
  auto f = GgufFile::open(kDir + "good_nested_depth8.gguf");
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  const Value* v = (*f)->find("deep");
  ASSERT_NE(v, nullptr);
  int depth = 1;
  while (v->elem_type == ValueType::kArray) {
    ASSERT_EQ(v->elements.size(), 1u);
    v = &v->elements[0];
    ++depth;
  }
  EXPECT_EQ(depth, 8);
  EXPECT_EQ(v->array_i64(0), 7);
}

TEST(GgufReaderTest, LimitsAreConfigurable) {
  Limits lim;
  lim.max_tensors = 2;
  auto f = GgufFile::open(kDir + "good_v3_types.gguf", lim);
  EXPECT_EQ(f.status().code(), StatusCode::kCorruptFile);
  EXPECT_NE(f.status().message().find("n_tensors 10 is absurd (limit 2)"), std::string::npos)
      << f.status().message();
  lim = Limits{};
  lim.max_array_depth = 1;
  f = GgufFile::open(kDir + "good_v3_types.gguf", lim);
  EXPECT_NE(f.status().message().find("key 't.arr.nested' nests arrays deeper than 1 levels"), std::string::npos)
      << f.status().message();
}

TEST(GgufReaderTest, OpenErrors) {
  auto missing = GgufFile::open(kDir + "does_not_exist.gguf");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("does_not_exist.gguf"), std::string::npos);
  auto dir = GgufFile::open(kDir);
  EXPECT_EQ(dir.status().code(), StatusCode::kIoError);
  EXPECT_EQ(GgufFile::from_memory(nullptr, 0).status().code(), StatusCode::kCorruptFile);
  EXPECT_EQ(GgufFile::from_memory(nullptr, 5).status().code(), StatusCode::kInvalidArgument);
}

// ---- bad files ---------------------------------------------------------------------------------

StatusCode code_from_name(const std::string& n) {
  static const std::map<std::string, StatusCode> kCodes = {
      {"kCorruptFile", StatusCode::kCorruptFile}, {"kUnsupported", StatusCode::kUnsupported},
      {"kNotFound", StatusCode::kNotFound}, {"kIoError", StatusCode::kIoError}};
  auto it = kCodes.find(n);
  EXPECT_NE(it, kCodes.end()) << n;
  return it == kCodes.end() ? StatusCode::kOk : it->second;
}

TEST(GgufReaderTest, EveryBadFileIsRejectedWithItsMessage) {
  std::ifstream manifest(kDir + "bad/expected.txt");
  ASSERT_TRUE(manifest.good());
  std::set<std::string> listed;
  std::string line;
  while (std::getline(manifest, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t t1 = line.find('\t'), t2 = line.find('\t', t1 + 1);
    ASSERT_NE(t2, std::string::npos) << line;
    const std::string file = line.substr(0, t1);
    const StatusCode code = code_from_name(line.substr(t1 + 1, t2 - t1 - 1));
    const std::string sub = line.substr(t2 + 1);
    listed.insert(file);
    SCOPED_TRACE(file);
    auto f = GgufFile::open(kDir + "bad/" + file);
    ASSERT_FALSE(f.ok());
    EXPECT_EQ(f.status().code(), code) << f.status().to_string();
    EXPECT_NE(f.status().message().find(sub), std::string::npos)
        << "message: " << f.status().message() << "\nexpected substring: " << sub;
    EXPECT_NE(f.status().message().find(file), std::string::npos) << "open() names the path";
    // The same through from_memory, on an exact-size heap copy (sanitizers see any over-read).
    const std::vector<uint8_t> bytes = read_bytes(kDir + "bad/" + file);
    auto m = GgufFile::from_memory(bytes.data(), bytes.size());
    ASSERT_FALSE(m.ok());
    EXPECT_EQ(m.status().code(), code);
    EXPECT_NE(m.status().message().find(sub), std::string::npos) << m.status().message();
  }
  EXPECT_GE(listed.size(), 40u);
  for (const auto& e : std::filesystem::directory_iterator(kDir + "bad")) {
    if (e.path().extension() == ".gguf") {
      EXPECT_TRUE(listed.count(e.path().filename().string())) << e.path() << " is not in expected.txt";
    }
  }
}

// ---- robustness: truncations and byte flips --------------------------------------------------

// Parses `bytes` from an exact-size heap copy; on success touches everything a caller could.
Status parse_and_walk(const std::vector<uint8_t>& bytes) {
  std::unique_ptr<uint8_t[]> copy(new uint8_t[bytes.size() ? bytes.size() : 1]);
  if (!bytes.empty()) std::memcpy(copy.get(), bytes.data(), bytes.size());
  auto f = GgufFile::from_memory(copy.get(), bytes.size());
  if (!f.ok()) return f.status();
  size_t sink = 0;
  for (const auto& kv : (*f)->metadata()) sink += kv.value.to_string(1 << 20).size();
  for (const auto& t : (*f)->tensors()) {
    sink += t.shape_string().size();
    for (uint64_t i = 0; i < t.n_bytes; ++i) sink += t.data[i];
  }
  return sink == SIZE_MAX ? internal_error("unreachable") : Status::Ok();
}

TEST(GgufReaderTest, EveryTruncationIsRejected) {
  for (const char* name : {"good_v3_types.gguf", "good_v3_llama.gguf", "good_nested_depth8.gguf",
                           "writer_reference.gguf"}) {
    SCOPED_TRACE(name);
    const std::vector<uint8_t> bytes = read_bytes(kDir + name);
    auto full = GgufFile::from_memory(bytes.data(), bytes.size());
    ASSERT_TRUE(full.ok()) << full.status().to_string();
    // Only the padding after the last tensor's data (or after the tensor infos when there are no
    // tensors) may be cut without losing anything.
    size_t needed = (*full)->data_section() - bytes.data();
    if ((*full)->tensors().empty()) {  // our no-tensor fixture ends in a nonzero byte, then padding
      needed = bytes.size();
      while (needed > 0 && bytes[needed - 1] == 0) --needed;
    }
    for (const auto& t : (*full)->tensors())
      needed = std::max<size_t>(needed, t.data + t.n_bytes - bytes.data());
    for (size_t n = 0; n < bytes.size(); ++n) {
      std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + n);
      Status s = parse_and_walk(prefix);
      if (n < needed) {
        ASSERT_FALSE(s.ok()) << "prefix of " << n << " bytes accepted";
        ASSERT_EQ(s.code(), StatusCode::kCorruptFile) << n << ": " << s.to_string();
      } else {
        ASSERT_TRUE(s.ok()) << n << ": " << s.to_string();
      }
    }
  }
}

TEST(GgufReaderTest, RandomByteFlipsNeverCrash) {
  std::mt19937_64 rng(20240601);
  int accepted = 0, rejected = 0;
  for (const char* name : {"good_v3_types.gguf", "good_v3_llama.gguf", "writer_reference.gguf"}) {
    const std::vector<uint8_t> bytes = read_bytes(kDir + name);
    // Most of the interesting bytes are in the header and tables: bias flips there.
    auto full = GgufFile::from_memory(bytes.data(), bytes.size());
    ASSERT_TRUE(full.ok());
    const size_t header = (*full)->data_section() - bytes.data();
    for (int iter = 0; iter < 1500; ++iter) {
      std::vector<uint8_t> m = bytes;
      const int n_flips = 1 + static_cast<int>(rng() % 4);
      for (int k = 0; k < n_flips; ++k) {
        const size_t at = rng() % (rng() % 8 ? header : m.size());
        switch (rng() % 3) {
          case 0: m[at] ^= uint8_t(1u << (rng() % 8)); break;
          case 1: m[at] = uint8_t(rng()); break;
          default: m[at] = (rng() % 2) ? 0xff : 0x00; break;
        }
      }
      Status s = parse_and_walk(m);
      if (s.ok()) {
        ++accepted;
      } else {
        ++rejected;
        EXPECT_TRUE(s.code() == StatusCode::kCorruptFile || s.code() == StatusCode::kUnsupported)
            << s.to_string();
        EXPECT_FALSE(s.message().empty());
      }
    }
  }
  EXPECT_GT(rejected, 100);
  EXPECT_GT(accepted, 10);  // flips in string bytes or tensor data are legal
}

// ---- writer ------------------------------------------------------------------------------------

std::vector<uint8_t> le_u32(uint32_t v) {
  std::vector<uint8_t> b(4);
  std::memcpy(b.data(), &v, 4);
  return b;
}
void append(std::vector<uint8_t>* out, const std::vector<uint8_t>& b) { out->insert(out->end(), b.begin(), b.end()); }
void append_u64(std::vector<uint8_t>* out, uint64_t v) {
  uint8_t b[8];
  std::memcpy(b, &v, 8);
  out->insert(out->end(), b, b + 8);
}

// [[1, 2], [3]] as i32, encoded as gguf-py does it.
std::vector<uint8_t> nested_i32() {
  std::vector<uint8_t> e = le_u32(uint32_t(ValueType::kArray));
  append_u64(&e, 2);
  append(&e, le_u32(uint32_t(ValueType::kI32)));
  append_u64(&e, 2);
  append(&e, le_u32(1));
  append(&e, le_u32(2));
  append(&e, le_u32(uint32_t(ValueType::kI32)));
  append_u64(&e, 1);
  append(&e, le_u32(3));
  return e;
}

// The content of tools/make_gguf_fixtures.py:make_writer_reference, call for call.
GgufWriter reference_writer() {
  GgufWriter w;
  w.add_string("general.architecture", "ref");
  w.set_alignment(64);
  w.add_u8("ref.u8", 7);
  w.add_i8("ref.i8", -7);
  w.add_u16("ref.u16", 700);
  w.add_i16("ref.i16", -700);
  w.add_u32("ref.u32", 70000);
  w.add_i32("ref.i32", -70000);
  w.add_u64("ref.u64", 7000000000000ull);
  w.add_i64("ref.i64", -7000000000000ll);
  w.add_f32("ref.f32", 0.75f);
  w.add_f64("ref.f64", 1.0 / 3.0);
  w.add_bool("ref.bool", true);
  w.add_string("ref.str", "omnirt ✓");
  w.add_string_array("ref.strs", {"a", "bc", ""});
  w.add_f32_array("ref.f32s", {1.0f, -2.5f, 1e-3f});
  w.add_i32_array("ref.i32s", {1, -2, 3});
  w.add_raw("ref.nested", ValueType::kArray, nested_i32());
  const float a[6] = {0, 1, 2, 3, 4, 5};
  EXPECT_TRUE(w.add_tensor("a", DType::kF32, {3, 2}, a, sizeof(a)).ok());
  const uint16_t b[3] = {f32_to_f16(1.0f), f32_to_f16(-1.0f), f32_to_f16(0.5f)};
  EXPECT_TRUE(w.add_tensor("b", DType::kF16, {3}, b, sizeof(b)).ok());
  uint8_t c[34];
  for (int i = 0; i < 34; ++i) c[i] = uint8_t(i);
  EXPECT_TRUE(w.add_tensor("c", DType::kQ8_0, {32}, c, sizeof(c)).ok());
  return w;
}

TEST(GgufWriterTest, MatchesGgufPyBytes) {
  const std::vector<uint8_t> want = read_bytes(kDir + "writer_reference.gguf");
  const std::vector<uint8_t> got = reference_writer().to_bytes();
  ASSERT_EQ(want.size(), got.size());
  for (size_t i = 0; i < want.size(); ++i) ASSERT_EQ(want[i], got[i]) << "first difference at byte " << i;
}

TEST(GgufWriterTest, RoundTripsThroughTheReader) {
  GgufWriter w = reference_writer();
  w.add_u32("ref.u32", 5);  // replaces in place, keeps position
  std::vector<std::string> big(1000, "tok");
  w.add_string_array("ref.big", big);
  w.add_string_array("ref.empty_strs", {});
  w.add_f32_array("ref.empty_f32s", {});
  w.add_string("ref.empty", "");
  w.add_bool("ref.false", false);
  std::vector<uint8_t> q4k(2 * 144, 0xAB);
  ASSERT_TRUE(w.add_tensor("d", DType::kQ4_K, {256, 2}, q4k.data(), q4k.size()).ok());
  const std::vector<uint8_t> bytes = w.to_bytes();
  auto f = GgufFile::from_memory(bytes.data(), bytes.size());
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 64u);
  EXPECT_EQ(g.metadata()[1].key, "general.alignment");
  EXPECT_EQ(g.metadata()[6].key, "ref.u32");
  EXPECT_EQ(*g.get_u32("ref.u32"), 5u);
  EXPECT_EQ(*g.get_i32("ref.i8"), -7);
  EXPECT_EQ(*g.get_u64("ref.u64"), 7000000000000ull);
  EXPECT_EQ(g.find("ref.i64")->scalar.i, -7000000000000ll);
  EXPECT_EQ(g.find("ref.f64")->scalar.f, 1.0 / 3.0);
  EXPECT_EQ(*g.get_f32("ref.f32"), 0.75f);
  EXPECT_TRUE(*g.get_bool("ref.bool"));
  EXPECT_FALSE(*g.get_bool("ref.false"));
  EXPECT_EQ(*g.get_string("ref.str"), "omnirt ✓");
  EXPECT_EQ(*g.get_string("ref.empty"), "");
  EXPECT_EQ(g.get_string_array("ref.big")->size(), 1000u);
  EXPECT_TRUE(g.get_string_array("ref.empty_strs")->empty());
  EXPECT_TRUE(g.get_f32_array("ref.empty_f32s")->empty());
  EXPECT_EQ(*g.get_i32_array("ref.i32s"), (std::vector<int32_t>{1, -2, 3}));
  EXPECT_EQ(*g.get_f32_array("ref.f32s"), (std::vector<float>{1.0f, -2.5f, 1e-3f}));
  EXPECT_EQ(g.find("ref.nested")->to_string(), "[[1, 2], [3]]");
  ASSERT_EQ(g.tensors().size(), 4u);
  const TensorInfo* d = g.find_tensor("d");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->type, DType::kQ4_K);
  EXPECT_EQ(d->n_bytes, q4k.size());
  EXPECT_EQ(d->offset % 64, 0u);
  EXPECT_EQ(std::memcmp(d->data, q4k.data(), q4k.size()), 0);
  const TensorInfo* a = g.find_tensor("a");
  float a1;
  std::memcpy(&a1, a->data + 4, 4);
  EXPECT_EQ(a1, 1.0f);
  EXPECT_EQ(a->shape_string(), "[3, 2]");
}

TEST(GgufWriterTest, WritesAFileThatOpens) {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  const float x[4] = {1, 2, 3, 4};
  ASSERT_TRUE(w.add_tensor("x", DType::kF32, {4}, x, sizeof(x)).ok());
  const std::string path = ::testing::TempDir() + "/gguf_writer_test_" + std::to_string(getpid()) + ".gguf";
  ASSERT_TRUE(w.write(path).ok());
  auto f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().to_string();
  EXPECT_EQ((*f)->alignment(), 32u);
  EXPECT_EQ((*f)->find("general.alignment"), nullptr);
  EXPECT_EQ(std::memcmp((*f)->find_tensor("x")->data, x, sizeof(x)), 0);
  f = Status();  // unmap before unlinking
  std::remove(path.c_str());
  EXPECT_EQ(w.write("/nonexistent-dir/x.gguf").code(), StatusCode::kIoError);
}

TEST(GgufWriterTest, RejectsMisuse) {
  GgufWriter w;
  const float x[4] = {};
  EXPECT_EQ(w.add_tensor("x", DType::kF32, {4}, x, 12).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("x", DType::kQ8_0, {4}, x, 16).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("x", DType::kF32, {}, x, 16).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("x", DType::kF32, {4, 0}, x, 0).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(w.add_tensor("x", DType(99), {4}, x, 16).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(w.add_tensor("x", DType::kF32, {4}, x, 16).ok());
  EXPECT_EQ(w.add_tensor("x", DType::kF32, {4}, x, 16).code(), StatusCode::kInvalidArgument);
  w.set_alignment(48);
  EXPECT_TRUE(w.to_bytes().empty());
  EXPECT_EQ(w.write(::testing::TempDir() + "/never.gguf").code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace omni::gguf

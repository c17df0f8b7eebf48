// Helpers shared by the `omnirt` subcommands.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tools/cli/cli.h"

namespace omni::cli {

int fail(const std::string& message) {
  std::fprintf(stderr, "omnirt: error: %s\n", message.c_str());
  return kExitFailure;
}

void note_synthetic(const std::string& path) {
  std::fprintf(stderr, "note: %s has random weights (synthetic); its output is noise\n",
               path.c_str());
}

omni_model* load_model(const std::string& path) {
  omni_model* model = nullptr;
  if (omni_status st = omni_model_load(path.c_str(), nullptr, &model); st != OMNI_OK) {
    fail("cannot load model '" + path + "': " + omni_status_name(st) + ": " + omni_last_error());
    return nullptr;
  }
  if (omni_model_is_synthetic(model)) note_synthetic(path);
  return model;
}

bool parse_token_list(const std::string& text, std::vector<int32_t>* out, std::string* error) {
  out->clear();
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c == ' ' || c == ',' || c == '\t' || c == '\n') {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < text.size() && text[end] != ' ' && text[end] != ',' && text[end] != '\t' &&
           text[end] != '\n')
      ++end;
    const std::string word = text.substr(i, end - i);
    char* stop = nullptr;
    const long long v = std::strtoll(word.c_str(), &stop, 10);
    if (stop == word.c_str() || *stop != '\0' || v < 0 || v > INT32_MAX) {
      *error = "'" + word + "' is not a token id (a non-negative integer)";
      return false;
    }
    out->push_back(static_cast<int32_t>(v));
    i = end;
  }
  if (out->empty()) {
    *error = "no token ids given";
    return false;
  }
  return true;
}

std::string escape_text(const std::string& bytes) {
  std::string out;
  auto hex = [&](unsigned char b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02X", b);
    out += buf;
  };
  for (size_t i = 0; i < bytes.size();) {
    const unsigned char b = static_cast<unsigned char>(bytes[i]);
    if (b == '\n') { out += "\\n"; ++i; continue; }
    if (b == '\t') { out += "\\t"; ++i; continue; }
    if (b == '\\') { out += "\\\\"; ++i; continue; }
    if (b < 0x20 || b == 0x7F) { hex(b); ++i; continue; }
    if (b < 0x80) { out += static_cast<char>(b); ++i; continue; }
    // A UTF-8 sequence is copied whole when valid; otherwise its first byte is escaped.
    const size_t len = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 0;
    bool ok = len != 0 && i + len <= bytes.size();
    for (size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(bytes[i + k]) & 0xC0) == 0x80;
    if (!ok) { hex(b); ++i; continue; }
    out.append(bytes, i, len);
    i += len;
  }
  return out;
}

double now_seconds() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

}  // namespace omni::cli

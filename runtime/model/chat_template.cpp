// Chat templates: the three prompt formats omnirt renders natively (no Jinja interpreter).
//  Gemma:  <start_of_turn>user\n{system\n\n}{content}<end_of_turn>\n ... <start_of_turn>model\n
//  ChatML: <|im_start|>{role}\n{content}<|im_end|>\n ... <|im_start|>assistant\n
//  Llama3: <|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|> ...
// Contents are trimmed where the reference Jinja templates apply `| trim` (Gemma, Llama 3).
#include <string>

#include "runtime/model/tokenizer.h"

namespace omni {
namespace {

std::string_view trim(std::string_view s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return {};
  const size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

bool known_role(const std::string& r) { return r == "system" || r == "user" || r == "assistant"; }

StatusOr<std::string> render_gemma(const std::vector<ChatMessage>& msgs, bool gen) {
  // Gemma has no system role: the system text is folded into the first user turn.
  size_t first = 0;
  std::string prefix;
  if (!msgs.empty() && msgs[0].role == "system") {
    prefix = msgs[0].content + "\n\n";  // not trimmed, as in the reference template
    first = 1;
  }
  std::string out;
  for (size_t i = first; i < msgs.size(); ++i) {
    const ChatMessage& m = msgs[i];
    const bool expect_user = (i - first) % 2 == 0;
    if (m.role == "system")
      return invalid_argument(fmt("chat: Gemma allows a system message only first (message %zu)", i));
    if ((m.role == "user") != expect_user)
      return invalid_argument(fmt("chat: Gemma roles must alternate user/assistant; message %zu is '%s'", i,
                                  m.role.c_str()));
    out += "<start_of_turn>";
    out += m.role == "assistant" ? "model" : "user";
    out += "\n";
    if (i == first) out += prefix;
    out += trim(m.content);
    out += "<end_of_turn>\n";
  }
  if (gen) out += "<start_of_turn>model\n";
  return out;
}

std::string render_chatml(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  for (const ChatMessage& m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
  if (gen) out += "<|im_start|>assistant\n";
  return out;
}

std::string render_llama3(const std::vector<ChatMessage>& msgs, bool gen) {
  std::string out;
  for (const ChatMessage& m : msgs) {
    out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n";
    out += trim(m.content);
    out += "<|eot_id|>";
  }
  if (gen) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
  return out;
}

}  // namespace

const char* chat_template_name(ChatTemplate t) {
  switch (t) {
    case ChatTemplate::kNone: return "none";
    case ChatTemplate::kGemma: return "gemma";
    case ChatTemplate::kChatML: return "chatml";
    case ChatTemplate::kLlama3: return "llama3";
  }
  return "none";
}

bool chat_template_from_name(std::string_view name, ChatTemplate* out) {
  static const std::pair<std::string_view, ChatTemplate> names[] = {
      {"none", ChatTemplate::kNone},     {"gemma", ChatTemplate::kGemma},   {"gemma3", ChatTemplate::kGemma},
      {"chatml", ChatTemplate::kChatML}, {"qwen2", ChatTemplate::kChatML},  {"llama3", ChatTemplate::kLlama3},
      {"llama-3", ChatTemplate::kLlama3}};
  for (const auto& [n, t] : names) {
    if (n == name) {
      *out = t;
      return true;
    }
  }
  return false;
}

ChatTemplate detect_chat_template(const gguf::GgufFile& file, const Tokenizer& tok) {
  auto tmpl = file.get_string_or("tokenizer.chat_template", "");
  if (tmpl.ok()) {
    const std::string& s = tmpl.value();
    if (s.find("<start_of_turn>") != std::string::npos) return ChatTemplate::kGemma;
    if (s.find("<|start_header_id|>") != std::string::npos) return ChatTemplate::kLlama3;
    if (s.find("<|im_start|>") != std::string::npos) return ChatTemplate::kChatML;
  }
  auto arch_or = file.get_string_or("general.architecture", "");
  const std::string arch = arch_or.ok() ? arch_or.value() : std::string();
  if (arch.rfind("gemma", 0) == 0) return ChatTemplate::kGemma;
  if (arch.rfind("qwen", 0) == 0) return ChatTemplate::kChatML;
  if (arch == "llama" && tok.find_piece("<|eot_id|>") >= 0) return ChatTemplate::kLlama3;
  if (tok.find_piece("<|im_start|>") >= 0 && tok.find_piece("<|im_end|>") >= 0) return ChatTemplate::kChatML;
  return ChatTemplate::kNone;
}

StatusOr<std::string> apply_chat_template(ChatTemplate t, const std::vector<ChatMessage>& messages,
                                          bool add_generation_prompt) {
  for (size_t i = 0; i < messages.size(); ++i) {
    if (!known_role(messages[i].role))
      return invalid_argument(fmt("chat: message %zu has role '%s' (system, user, assistant)", i,
                                  messages[i].role.c_str()));
  }
  switch (t) {
    case ChatTemplate::kGemma: return render_gemma(messages, add_generation_prompt);
    case ChatTemplate::kChatML: return render_chatml(messages, add_generation_prompt);
    case ChatTemplate::kLlama3: return render_llama3(messages, add_generation_prompt);
    case ChatTemplate::kNone: break;
  }
  return invalid_argument("chat: no chat template (ChatTemplate::kNone) to render with");
}

}  // namespace omni

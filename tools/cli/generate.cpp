// `omnirt generate`: a prompt in, streamed text out (stdout), statistics on stderr.
// Written against the C API (the CLI is the API's first user); --video decodes frames with
// vision/io (to report them) and hands their pixels to omni_session_append_image_rgb; in a
// --chat message, where images travel as files, each frame goes as an exact BMP.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "tools/cli/cli.h"
#include "vision/io/image.h"
#include "vision/io/video.h"

namespace omni::cli {
namespace {

struct GenerateOptions {
  std::string model, prompt, system, mmproj;
  std::vector<std::string> images;
  std::string video;
  double fps = 1.0;
  int max_frames = 8;
  bool chat = false;
  int n_predict = 256;
  float temperature = 0.8f, top_p = 0.95f, min_p = 0.05f, repeat_penalty = 1.0f;
  int top_k = 40, repeat_last_n = 64, threads = 0, n_ctx = 0;
  uint64_t seed = 0;
  std::string kv = "f16";
  bool int8 = false;  // decode with int8 activations (omni_session_params.int8_activations)
};

struct StreamState {
  int n_tokens = 0;
  double first_token_s = 0;
};

int print_piece(omni_token token, const char* piece, size_t len, void* user_data) {
  auto* state = static_cast<StreamState*>(user_data);
  if (token != OMNI_TOKEN_NONE && state->n_tokens++ == 0) state->first_token_s = now_seconds();
  std::fwrite(piece, 1, len, stdout);
  std::fflush(stdout);  // streamed as produced
  return 0;
}

const char* stop_reason_text(omni_stop_reason r) {
  switch (r) {
    case OMNI_STOP_END_OF_GENERATION: return "end of turn";
    case OMNI_STOP_MAX_TOKENS: return "token limit (-n)";
    case OMNI_STOP_CALLBACK: return "callback";
    case OMNI_STOP_REQUESTED: return "stop requested";
    case OMNI_STOP_CONTEXT_FULL: return "context full (--ctx)";
    case OMNI_STOP_NONE: break;
  }
  return "none";
}

struct Handles {
  omni_model* model = nullptr;
  omni_engine* engine = nullptr;
  omni_session* session = nullptr;
  ~Handles() {
    omni_session_destroy(session);
    omni_engine_destroy(engine);
    omni_model_destroy(model);
  }
};

// The image files' bytes; false (after printing why) when one cannot be read.
bool read_images(const std::vector<std::string>& paths, std::vector<std::vector<uint8_t>>* out) {
  for (const std::string& p : paths) {
    std::ifstream f(p, std::ios::binary);
    if (!f) {
      fail("cannot open image '" + p + "'");
      return false;
    }
    out->emplace_back(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    if (f.bad()) {
      fail("cannot read image '" + p + "'");
      return false;
    }
  }
  return true;
}

// Where the frames of --video go: replaced by one image marker per frame.
constexpr const char* kVideoMarker = "<__video__>";

size_t count_of(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + what.size())) ++n;
  return n;
}

// The video's frames and where they go: after `at` of the --image files, with the prompt split
// at the video marker into before / after (no marker: before = "", the images first).
struct VideoPlacement {
  omni::vision::Video video;
  size_t at = 0;
  std::string before, after;
};

// Decodes o.video's frames and places them; false after printing why.
bool decode_video(const GenerateOptions& o, const std::string& prompt, size_t n_images,
                  VideoPlacement* out) {
  omni::vision::VideoOptions vo;
  vo.fps = o.fps;
  vo.max_frames = o.max_frames;
  auto video = omni::vision::decode_video_file(o.video, vo);
  if (!video.ok()) {
    fail("--video: " + video.status().message());
    return false;
  }
  out->video = std::move(video).value();
  const size_t n_video = count_of(prompt, kVideoMarker);
  out->at = n_images;  // no markers at all: after the --image files, before the text
  out->after = prompt;
  if (n_video > 1) {
    fail("--prompt has " + std::to_string(n_video) + " " + kVideoMarker + " markers; --video gives one");
    return false;
  }
  if (n_video == 1) {
    const size_t pos = prompt.find(kVideoMarker);
    out->before = prompt.substr(0, pos);
    out->after = prompt.substr(pos + std::string(kVideoMarker).size());
    out->at = count_of(out->before, OMNI_IMAGE_MARKER);
    if (out->at > n_images) out->at = n_images;  // the marker count check reports it
  } else if (count_of(prompt, OMNI_IMAGE_MARKER) > 0) {
    fail(std::string("--video: the prompt places images with ") + OMNI_IMAGE_MARKER + "; put " +
         kVideoMarker + " where the video's frames go");
    return false;
  }
  const auto& fr = out->video.frames;
  std::fprintf(stderr, "video: %zu frames (%d x %d) at %g fps, t = %.2f .. %.2f s, of %lld decoded\n",
               fr.size(), fr.front().image.width, fr.front().image.height, o.fps, fr.front().time_s,
               fr.back().time_s, static_cast<long long>(out->video.frames_decoded));
  return true;
}

// A chat message takes image files: the frames as exact BMPs, at their place among the --image
// files, and the prompt with one image marker per frame.
void frames_as_files(const VideoPlacement& v, std::string* prompt,
                     std::vector<std::vector<uint8_t>>* image_bytes) {
  std::string markers;
  std::vector<std::vector<uint8_t>> frames;
  for (const auto& f : v.video.frames) {
    frames.push_back(omni::vision::encode_bmp(f.image));
    markers += OMNI_IMAGE_MARKER;
  }
  *prompt = v.before + markers + v.after;
  image_bytes->insert(image_bytes->begin() + static_cast<std::ptrdiff_t>(v.at),
                      std::make_move_iterator(frames.begin()), std::make_move_iterator(frames.end()));
}

// Outside chat: the text and images before the video, its frames as pixels, then the rest. Each
// call evaluates its chunks as one call would (chunk by chunk), so the result is the same.
omni_status append_with_video(omni_session* s, const VideoPlacement& v,
                              const std::vector<omni_image>& images) {
  const size_t n_images = images.size();
  omni_status st = OMNI_OK;
  if (!v.before.empty() || v.at > 0) {
    st = omni_session_append_prompt(s, v.before.c_str(), images.data(), v.at, OMNI_TOKENIZE_ADD_BOS);
  }
  for (size_t i = 0; st == OMNI_OK && i < v.video.frames.size(); ++i) {
    const omni::vision::Image& img = v.video.frames[i].image;
    st = omni_session_append_image_rgb(s, img.rgb.data(), img.width, img.height,
                                       size_t(img.width) * 3, OMNI_TOKENIZE_ADD_BOS);
  }
  if (st == OMNI_OK && (!v.after.empty() || v.at < n_images)) {
    st = omni_session_append_prompt(s, v.after.c_str(), images.data() + v.at, n_images - v.at,
                                    OMNI_TOKENIZE_ADD_BOS);
  }
  return st;
}

int run_generate(const GenerateOptions& o) {
  if (o.n_predict < 0) return fail("-n " + std::to_string(o.n_predict) + " is negative");
  if (o.kv != "f16" && o.kv != "f32") return fail("--kv '" + o.kv + "' must be f16 or f32");
  if (!o.system.empty() && !o.chat) return fail("--system needs --chat");
  Handles h;
  h.model = load_model(o.model);
  if (!h.model) return kExitFailure;
  if (!o.mmproj.empty() && omni_model_load_mmproj(h.model, o.mmproj.c_str()) != OMNI_OK) {
    return fail(std::string("--mmproj: ") + omni_last_error());
  }
  std::vector<std::vector<uint8_t>> image_bytes;
  std::vector<omni_image> images;
  std::string prompt = o.prompt;
  VideoPlacement video;
  const bool with_video = !o.video.empty();
  if (!o.images.empty() || !o.video.empty()) {
    if (!omni_model_has_vision(h.model)) {
      return fail(std::string(o.images.empty() ? "--video" : "--image") +
                  " needs a vision encoder: '" + o.model +
                  "' has none; give its projector with --mmproj FILE");
    }
    if (!read_images(o.images, &image_bytes)) return kExitFailure;
    if (with_video && !decode_video(o, prompt, image_bytes.size(), &video)) return kExitFailure;
    if (with_video && o.chat) frames_as_files(video, &prompt, &image_bytes);
    for (const auto& b : image_bytes) images.push_back(omni_image{b.data(), b.size()});
  } else if (count_of(prompt, kVideoMarker) > 0) {
    return fail(std::string("--prompt has ") + kVideoMarker + " but no --video");
  }
  omni_engine_params ep = omni_engine_default_params();
  ep.n_threads = o.threads;
  if (omni_engine_create(&ep, &h.engine) != OMNI_OK) return fail(omni_last_error());
  omni_session_params sp = omni_session_default_params();
  sp.n_ctx = o.n_ctx;
  sp.kv_type = o.kv == "f32" ? OMNI_KV_F32 : OMNI_KV_F16;
  sp.temperature = o.temperature;
  sp.top_k = o.top_k;
  sp.top_p = o.top_p;
  sp.min_p = o.min_p;
  sp.repeat_penalty = o.repeat_penalty;
  sp.repeat_last_n = o.repeat_last_n;
  sp.seed = o.seed;
  sp.int8_activations = o.int8 ? 1 : 0;
  if (omni_session_create(h.engine, h.model, &sp, &h.session) != OMNI_OK) {
    return fail(omni_last_error());
  }

  const double t0 = now_seconds();
  omni_status st = OMNI_OK;
  if (o.chat) {
    if (!o.system.empty()) st = omni_session_append_chat(h.session, "system", o.system.c_str());
    if (st == OMNI_OK && images.empty()) {
      st = omni_session_append_chat(h.session, "user", prompt.c_str());
    } else if (st == OMNI_OK) {
      st = omni_session_append_chat_images(h.session, "user", prompt.c_str(), images.data(),
                                           images.size());
    }
  } else if (with_video) {
    st = append_with_video(h.session, video, images);
  } else if (images.empty()) {
    st = omni_session_append_text(h.session, prompt.c_str(), OMNI_TOKENIZE_ADD_BOS);
  } else {
    st = omni_session_append_prompt(h.session, prompt.c_str(), images.data(), images.size(),
                                    OMNI_TOKENIZE_ADD_BOS);
  }
  if (st != OMNI_OK) {
    return fail(std::string(st == OMNI_ERR_OUT_OF_RANGE ? "prompt does not fit: " : "prompt: ") +
                omni_last_error());
  }
  const int n_prompt = omni_session_n_tokens(h.session);
  const double t1 = now_seconds();
  const size_t n_pictures = images.size() + (with_video && !o.chat ? video.video.frames.size() : 0);
  if (n_pictures > 0) {
    omni_vision_stats vs;
    vs.struct_size = sizeof vs;
    if (omni_model_vision_stats(h.model, &vs) == OMNI_OK) {
      std::fprintf(stderr, "images: %zu, encoded %llu in %.1f ms (%d px, cache hits %llu)\n",
                   n_pictures, static_cast<unsigned long long>(vs.encodes), vs.encode_ms,
                   vs.image_size, static_cast<unsigned long long>(vs.cache_hits));
    }
  }

  StreamState state;
  st = omni_session_generate(h.session, o.n_predict, print_piece, &state);
  const double t2 = now_seconds();
  std::fputc('\n', stdout);
  std::fflush(stdout);
  if (st != OMNI_OK) return fail(std::string("generate: ") + omni_last_error());

  const double prefill_s = t1 - t0, decode_s = t2 - t1;
  std::fprintf(stderr,
               "prompt: %d tokens in %.1f ms (%.1f tok/s) | generated: %d tokens in %.1f ms "
               "(%.1f tok/s), first token after %.1f ms | stop: %s\n",
               n_prompt, prefill_s * 1e3, prefill_s > 0 ? n_prompt / prefill_s : 0.0,
               state.n_tokens, decode_s * 1e3, decode_s > 0 ? state.n_tokens / decode_s : 0.0,
               state.n_tokens ? (state.first_token_s - t0) * 1e3 : 0.0,
               stop_reason_text(omni_session_stop_reason(h.session)));
  return 0;
}

}  // namespace

void add_generate_command(CLI::App& root, std::vector<Command>& out) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* c = root.add_subcommand("generate", "Generate text from a prompt, streamed to stdout");
  c->add_option("--model,-m", o->model, "GGUF model file")->required();
  c->add_option("--prompt,-p", o->prompt, "Prompt text")->required();
  c->add_option("--image", o->images,
                 "Image file (repeatable); placed at each <__image__> in the prompt, in order, "
                 "or before the text when the prompt has none");
  c->add_option("--video", o->video,
                "Video file: frames sampled at --fps (at most --max-frames) go in as consecutive "
                "images at <__video__> in the prompt, or before the text when it has no marker");
  c->add_option("--fps", o->fps, "Video frames per second of presentation time")
      ->capture_default_str();
  c->add_option("--max-frames", o->max_frames, "Most video frames")->capture_default_str();
  c->add_option("--mmproj", o->mmproj,
                "Vision projector GGUF (llama.cpp mmproj) for --image; not needed when the "
                "model file holds its own vision encoder");
  c->add_flag("--chat", o->chat, "Wrap the prompt in the model's chat template");
  c->add_option("--system", o->system, "System message (with --chat)");
  c->add_option("-n,--n-predict", o->n_predict, "Most tokens to generate")->capture_default_str();
  c->add_option("--temp", o->temperature, "Temperature; <= 0 is greedy")->capture_default_str();
  c->add_option("--top-k", o->top_k, "Top-k; <= 0 is off")->capture_default_str();
  c->add_option("--top-p", o->top_p, "Top-p; >= 1 is off")->capture_default_str();
  c->add_option("--min-p", o->min_p, "Min-p; <= 0 is off")->capture_default_str();
  c->add_option("--repeat-penalty", o->repeat_penalty, "Repetition penalty; 1 is off")
      ->capture_default_str();
  c->add_option("--repeat-last-n", o->repeat_last_n, "Tokens the penalty looks back over")
      ->capture_default_str();
  c->add_option("--seed", o->seed, "Sampler seed")->capture_default_str();
  c->add_option("--threads,-t", o->threads, "CPU threads; 0 = all cores")->capture_default_str();
  c->add_option("--ctx,-c", o->n_ctx, "Context size in tokens; 0 = min(training, 4096)")
      ->capture_default_str();
  c->add_option("--kv", o->kv, "KV cache type: f16 or f32")->capture_default_str();
  c->add_flag("--int8", o->int8, "Decode with int8-quantised activations (Q8_0, Q4_0, Q5_0, Q4_K matrices)");
  out.push_back({c, [o] { return run_generate(*o); }});
}

}  // namespace omni::cli

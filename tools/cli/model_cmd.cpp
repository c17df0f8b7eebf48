// `omnirt model create` (synthetic GGUF files with random weights at real shapes) and
// `omnirt model inspect` (a readable report of any GGUF file).
#include <cstdio>
#include <memory>
#include <string>

#include "kernels/core/dtype.h"
#include "runtime/model/gguf.h"
#include "runtime/model/inspect.h"
#include "runtime/model/snac_loader.h"
#include "runtime/model/synthetic.h"
#include "runtime/model/synthetic_omni.h"
#include "runtime/model/vision_loader.h"
#include "tools/cli/cli.h"

namespace omni::cli {
namespace {

struct CreateOptions {
  std::string arch, preset, type = "f16", out;
  uint64_t seed = 0;
  int threads = 0;
};

struct InspectOptions {
  std::string file;
  bool all = false;
};

std::string preset_list() {
  std::string s;
  for (const auto& p : synthetic_presets()) s += (s.empty() ? "" : ", ") + p;
  for (const auto& p : synthetic_vision_presets()) s += ", " + p;
  for (const auto& p : synthetic_snac_presets()) s += ", " + p;
  for (const auto& p : synthetic_omni_presets()) s += ", " + p;
  return s;
}

int run_create(const CreateOptions& o) {
  DType type;
  if (!dtype_from_name(o.type.c_str(), &type)) return fail("--type '" + o.type + "' is not a type name (f32, f16, q8_0, q4_K, ...)");
  for (const auto& vp : synthetic_vision_presets()) {  // vision encoders (mmproj-style files)
    if (o.preset != vp) continue;
    if (Status st = create_synthetic_vision({o.preset, type, o.seed}, o.out); !st.ok())
      return fail("model create: " + st.to_string());
    std::fprintf(stderr, "wrote %s (vision preset %s, %s weights, seed %llu; random weights)\n",
                 o.out.c_str(), o.preset.c_str(), dtype_name(type), static_cast<unsigned long long>(o.seed));
    return 0;
  }
  for (const auto& sp : synthetic_snac_presets()) {  // SNAC codec decoders (standalone codec files)
    if (o.preset != sp) continue;
    if (Status st = create_synthetic_snac(o.preset, type, o.seed, o.out); !st.ok()) return fail("model create: " + st.to_string());
    std::fprintf(stderr, "wrote %s (codec preset %s, %s matrices, seed %llu; random weights: decodes to noise)\n",
                 o.out.c_str(), o.preset.c_str(), dtype_name(type), static_cast<unsigned long long>(o.seed));
    return 0;
  }
  for (const auto& op : synthetic_omni_presets()) {  // omni files: backbone + audio-out heads + components
    if (o.preset != op) continue;
    if (!o.arch.empty()) return fail("--arch does not apply to omni preset '" + o.preset + "' (its backbone is fixed)");
    if (Status st = create_synthetic_omni({o.preset, type, o.seed, o.threads}, o.out); !st.ok())
      return fail("model create: " + st.to_string());
    std::fprintf(stderr, "wrote %s (omni preset %s, %s weights, seed %llu; random weights: text and voice are noise)\n",
                 o.out.c_str(), o.preset.c_str(), dtype_name(type), static_cast<unsigned long long>(o.seed));
    return 0;
  }
  SyntheticSpec spec;
  spec.arch = o.arch;
  spec.preset = o.preset;
  spec.type = type;
  spec.seed = o.seed;
  spec.n_threads = o.threads;
  if (Status st = create_synthetic_model(spec, o.out); !st.ok()) {
    return fail("model create: " + st.to_string() + " (presets: " + preset_list() + ")");
  }
  std::fprintf(stderr, "wrote %s (preset %s, %s weights, seed %llu; random weights)\n",
               o.out.c_str(), o.preset.c_str(), dtype_name(type),
               static_cast<unsigned long long>(o.seed));
  return 0;
}

int run_inspect(const InspectOptions& o) {
  auto file = gguf::GgufFile::open(o.file);
  if (!file.ok()) return fail("cannot read '" + o.file + "': " + file.status().to_string());
  const std::string report = inspect_gguf(**file, o.all);
  std::fwrite(report.data(), 1, report.size(), stdout);
  return 0;
}

}  // namespace

void add_model_commands(CLI::App& root, std::vector<Command>& out) {
  CLI::App* model = root.add_subcommand("model", "Create or inspect model files");
  model->require_subcommand(1);

  auto co = std::make_shared<CreateOptions>();
  CLI::App* create = model->add_subcommand("create", "Write a GGUF file with random weights");
  create->add_option("--arch", co->arch, "llama, qwen2 or gemma3 (default: the preset's)");
  create->add_option("--preset", co->preset, "tiny, gemma3-270m, qwen2.5-0.5b, llama3.2-1b, qwen2.5-7b, vit-tiny, siglip-so400m-384, "
                  "clip-vit-l-336, snac-tiny, snac-24khz, omni-tiny, orpheus-tiny, mini-omni-0.5b, orpheus-3b")
      ->required();
  create->add_option("--type", co->type, "Weight type: f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K")
      ->capture_default_str();
  create->add_option("--seed", co->seed, "Random seed")->capture_default_str();
  create->add_option("--threads,-t", co->threads, "Threads; 0 = all cores (same bytes)");
  create->add_option("--out,-o", co->out, "Output GGUF file")->required();
  out.push_back({create, [co] { return run_create(*co); }});

  auto io = std::make_shared<InspectOptions>();
  CLI::App* inspect = model->add_subcommand("inspect", "Print a GGUF file's metadata and tensors");
  inspect->add_option("file", io->file, "GGUF file")->required();
  inspect->add_flag("--all", io->all, "List every tensor");
  out.push_back({inspect, [io] { return run_inspect(*io); }});
}

}  // namespace omni::cli

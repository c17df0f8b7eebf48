#include "runtime/model/audio_loader.h"

#include <cmath>

#include "runtime/model/gguf_bind.h"

namespace omni {
namespace {

using audio::WhisperBlock;
using audio::WhisperLayerNorm;
using audio::WhisperLinear;
using audio::WhisperMatrix;

StatusOr<int64_t> hparam(const gguf::GgufFile& f, const char* key, int64_t max) {
  return gguf_bind::u32_in(f, "audio encoder", key, 1, max);
}

Status load_into(const gguf::GgufFile& f, audio::AudioEncoderWeights* out) {
  OMNI_ASSIGN_OR_RETURN(bool has_audio, f.get_bool_or("clip.has_audio_encoder", false));
  if (!has_audio)
    return unsupported(fmt("'%s' has no audio encoder (clip.has_audio_encoder is absent or false)", f.path().c_str()));
  std::string proj;
  if (f.find("clip.audio.projector_type")) {
    OMNI_ASSIGN_OR_RETURN(proj, f.get_string("clip.audio.projector_type"));
  } else {
    OMNI_ASSIGN_OR_RETURN(proj, f.get_string("clip.projector_type"));
  }
  audio::AudioAdapterWeights& a = out->adapter;
  if (proj == "ultravox") {
    a.type = audio::AudioProjector::kUltravox;
  } else if (proj == "qwen2a") {
    a.type = audio::AudioProjector::kQwen2Audio;
  } else {
    return unsupported(fmt("audio encoder: projector type '%s' is not supported (ultravox, qwen2a)", proj.c_str()));
  }
  audio::WhisperHParams& hp = out->whisper.hp;
  OMNI_ASSIGN_OR_RETURN(hp.n_mels, hparam(f, "clip.audio.num_mel_bins", 1024));
  OMNI_ASSIGN_OR_RETURN(hp.n_audio_state, hparam(f, "clip.audio.embedding_length", 1 << 14));
  OMNI_ASSIGN_OR_RETURN(int64_t n_ff, hparam(f, "clip.audio.feed_forward_length", 1 << 16));
  OMNI_ASSIGN_OR_RETURN(hp.n_audio_layer, hparam(f, "clip.audio.block_count", 256));
  OMNI_ASSIGN_OR_RETURN(hp.n_audio_head, hparam(f, "clip.audio.attention.head_count", 256));
  OMNI_ASSIGN_OR_RETURN(a.n_embd_out, hparam(f, "clip.audio.projection_dim", 1 << 16));
  OMNI_ASSIGN_OR_RETURN(float eps, f.get_f32_or("clip.audio.attention.layer_norm_epsilon", 1e-5f));
  const int64_t d = hp.n_audio_state;
  if (hp.n_mels != 80 && hp.n_mels != 128)
    return unsupported(fmt("audio encoder: clip.audio.num_mel_bins = %lld (Whisper's log-mel has 80 or 128)",
                           static_cast<long long>(hp.n_mels)));
  if (d % hp.n_audio_head != 0)
    return corrupt_file(fmt("audio encoder: embedding_length %lld is not a multiple of head_count %lld",
                            static_cast<long long>(d), static_cast<long long>(hp.n_audio_head)));
  if (n_ff != 4 * d)
    return unsupported(fmt("audio encoder: feed_forward_length %lld is not 4 x embedding_length %lld (Whisper's)",
                           static_cast<long long>(n_ff), static_cast<long long>(d)));
  if (!(std::fabs(eps - 1e-5f) <= 1e-9f))
    return unsupported(fmt("audio encoder: layer_norm_epsilon %g (Whisper's encoder uses 1e-5)", double(eps)));

  if (a.type == audio::AudioProjector::kUltravox) {
    OMNI_ASSIGN_OR_RETURN(a.stack, hparam(f, "clip.audio.projector.stack_factor", 64));
  }
  if (f.find(kAudioChunkMsKey)) {  // optional; 10 ms (one mel frame) to Whisper's 30 s window
    OMNI_ASSIGN_OR_RETURN(out->chunk_ms, gguf_bind::u32_in(f, "audio encoder", kAudioChunkMsKey, 10, 30000));
  }

  gguf_bind::Binder t(f, "audio encoder", /*unsqueezed_vectors=*/true);
  const gguf::TensorInfo* pos = f.find_tensor("a.position_embd.weight");
  if (!pos) return corrupt_file("audio encoder: tensor 'a.position_embd.weight' is missing");
  hp.n_audio_ctx = pos->n_dims == 2 ? pos->ne[1] : 0;
  if (hp.n_audio_ctx < 1 || hp.n_audio_ctx > (1 << 16))
    return corrupt_file(fmt("audio encoder: a.position_embd.weight has shape %s, expected [%lld, n_positions]",
                            pos->shape_string().c_str(), static_cast<long long>(d)));
  audio::WhisperWeights& w = out->whisper;
  OMNI_ASSIGN_OR_RETURN(w.enc_pos, t.floats("a.position_embd.weight", {hp.n_audio_ctx, d}));
  OMNI_ASSIGN_OR_RETURN(w.conv1, t.conv3<audio::WhisperConv>("a.conv1d.1", d, hp.n_mels));
  OMNI_ASSIGN_OR_RETURN(w.conv2, t.conv3<audio::WhisperConv>("a.conv1d.2", d, d));
  for (int64_t i = 0; i < hp.n_audio_layer; ++i) {
    const std::string b = "a.blk." + std::to_string(i) + ".";
    WhisperBlock blk;
    OMNI_ASSIGN_OR_RETURN(blk.attn_ln, t.norm<WhisperLayerNorm>(b + "ln1", d));
    OMNI_ASSIGN_OR_RETURN(blk.attn.query, t.linear<WhisperLinear>(b + "attn_q", d, d, true));
    OMNI_ASSIGN_OR_RETURN(blk.attn.key,
                          t.linear<WhisperLinear>(b + "attn_k", d, d, t.has(b + "attn_k.bias")));
    OMNI_ASSIGN_OR_RETURN(blk.attn.value, t.linear<WhisperLinear>(b + "attn_v", d, d, true));
    OMNI_ASSIGN_OR_RETURN(blk.attn.out, t.linear<WhisperLinear>(b + "attn_out", d, d, true));
    OMNI_ASSIGN_OR_RETURN(blk.mlp_ln, t.norm<WhisperLayerNorm>(b + "ln2", d));
    OMNI_ASSIGN_OR_RETURN(blk.mlp0, t.linear<WhisperLinear>(b + "ffn_up", n_ff, d, true));
    OMNI_ASSIGN_OR_RETURN(blk.mlp2, t.linear<WhisperLinear>(b + "ffn_down", d, n_ff, true));
    w.enc_blocks.push_back(std::move(blk));
  }
  OMNI_ASSIGN_OR_RETURN(w.enc_ln_post, t.norm<WhisperLayerNorm>("a.post_ln", d));

  a.n_in = d;
  if (a.type == audio::AudioProjector::kQwen2Audio) {
    a.pooled_ln = w.enc_ln_post;
    OMNI_ASSIGN_OR_RETURN(a.fc, t.linear<WhisperLinear>("mm.a.fc", a.n_embd_out, d, true));
    return Status::Ok();
  }
  const int64_t kd = a.stack * d;
  const gguf::TensorInfo* fc1 = f.find_tensor("mm.a.mlp.1.weight");
  if (!fc1) return corrupt_file("audio encoder: tensor 'mm.a.mlp.1.weight' is missing");
  const int64_t h = fc1->n_dims == 2 ? fc1->ne[1] : 0;
  if (h < 2 || h % 2 != 0)
    return corrupt_file(fmt("audio encoder: mm.a.mlp.1.weight has shape %s, expected [%lld, an even width] "
                            "(stack_factor %lld x embedding_length %lld)",
                            fc1->shape_string().c_str(), static_cast<long long>(kd),
                            static_cast<long long>(a.stack), static_cast<long long>(d)));
  OMNI_ASSIGN_OR_RETURN(a.norm_pre, t.floats("mm.a.norm_pre.weight", {kd}));
  OMNI_ASSIGN_OR_RETURN(a.fc1, t.matrix<WhisperMatrix>("mm.a.mlp.1.weight", h, kd));
  OMNI_ASSIGN_OR_RETURN(a.norm_mid, t.floats("mm.a.norm_mid.weight", {h / 2}));
  OMNI_ASSIGN_OR_RETURN(a.fc2, t.matrix<WhisperMatrix>("mm.a.mlp.2.weight", a.n_embd_out, h / 2));
  return Status::Ok();
}

}  // namespace

bool has_audio_component(const gguf::GgufFile& f) {
  auto v = f.get_bool_or("clip.has_audio_encoder", false);
  return v.ok() && *v;
}

StatusOr<std::unique_ptr<AudioEncoderModel>> load_audio_encoder(const gguf::GgufFile& f) {
  auto m = std::make_unique<AudioEncoderModel>();
  OMNI_RETURN_IF_ERROR(load_into(f, &m->weights));
  return m;
}

StatusOr<std::unique_ptr<AudioEncoderModel>> load_audio_encoder(const std::string& path) {
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<gguf::GgufFile> file, gguf::GgufFile::open(path));
  OMNI_ASSIGN_OR_RETURN(std::unique_ptr<AudioEncoderModel> m, load_audio_encoder(*file));
  m->file = std::move(file);
  return m;
}

}  // namespace omni

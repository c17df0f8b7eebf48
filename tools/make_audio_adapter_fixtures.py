#!/usr/bin/env python3
"""Fixtures for tests/audio_adapter_test.cpp: tiny audio encoders + adapters in llama.cpp's
mmproj layout (written with gguf-py) and their outputs computed by independent references:

  * Ultravox: transformers' WhisperEncoder, then Ultravox's projector (StackAudioFrames ->
    RMSNorm -> Linear -> SwiGLU -> RMSNorm -> Linear) written out below from
    fixie-ai/ultravox's ultravox_model.py (the installed transformers has no Ultravox class),
    with transformers' LlamaRMSNorm (eps 1e-6) as Ultravox uses it.
  * Qwen2-Audio: transformers' Qwen2AudioEncoder (blocks, AvgPool1d(2, 2), layer norm) and
    Qwen2AudioMultiModalProjector.
  * Qwen2.5-Omni's audio encoder (transformers' Qwen2_5OmniAudioEncoder, eager attention):
    n_window 16 -> chunks of 32 mel frames, each with its own conv stem, positions from 0 and
    attention inside the chunk, then pool, ln_post, proj: the same network as Qwen2-Audio's
    layout run chunk by chunk, which is what AudioStream does (qwen25omni.gguf, 80 frames =
    2 full chunks + one of 16; qwen25omni_out_80.f32).

Random weights (matrices rounded to f16, as stored), float64 reference compute. Each case
feeds a random normalized log-mel of 64 frames (32 encoder positions) and of 40 frames (20
positions: Ultravox pads its last group of 8, Qwen2-Audio pools 20 -> 10); the encoder of the
shorter case is the same network with the first 20 positions (HF's encoders need the input to
fill their position table). Also writes broken variants of the files for the loader's messages.

Outputs (tests/data/audio_adapter/): {ultravox,qwen2a}.gguf, mel_{64,40}.f32 ([T, 80]
time-major), {ultravox,qwen2a}_out_{64,40}.f32 ([rows, n_out]), broken_*.gguf, meta.json.
Run: python3 tools/make_audio_adapter_fixtures.py
"""
import json
import os

import gguf
import numpy as np
import torch
import torch.nn.functional as F
from transformers import Qwen2AudioEncoderConfig, WhisperConfig
from transformers.models.llama.modeling_llama import LlamaRMSNorm
from transformers.models.qwen2_audio.modeling_qwen2_audio import Qwen2AudioEncoder
from transformers.models.whisper.modeling_whisper import WhisperEncoder

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "audio_adapter")
D, HEADS, LAYERS, MELS, CTX = 32, 4, 2, 80, 32
STACK, HIDDEN, N_OUT = 8, 64, 48


def f16(t):
    return t.to(torch.float16).to(torch.float64)


def randomize(module, gen):
    """Every parameter random: matrices N(0, 1/fan_in) rounded to f16; vectors small normals
    (layer-norm weights around 1)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2:
                fan_in = p[0].numel()
                p.copy_(f16(torch.randn(p.shape, generator=gen, dtype=torch.float64) / fan_in ** 0.5))
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
        # Positions: Whisper's sinusoids plus noise, f32.
        pos = module.embed_positions.weight
        t = torch.arange(pos.shape[0], dtype=torch.float64)[:, None]
        inv = torch.exp(-np.log(10000.0) / (D // 2 - 1) * torch.arange(D // 2, dtype=torch.float64))
        pos.copy_(torch.cat([torch.sin(t * inv), torch.cos(t * inv)], 1)
                  + 0.05 * torch.randn(pos.shape, generator=gen, dtype=torch.float64))


class UltravoxProjector(torch.nn.Module):
    """fixie-ai/ultravox ultravox_model.py, projector_ln_mid=True (v0.5+), projector_act swiglu."""

    def __init__(self):
        super().__init__()
        self.ln_pre = LlamaRMSNorm(D * STACK, eps=1e-6)
        self.linear_1 = torch.nn.Linear(D * STACK, HIDDEN, bias=False)
        self.ln_mid = LlamaRMSNorm(HIDDEN // 2, eps=1e-6)
        self.linear_2 = torch.nn.Linear(HIDDEN // 2, N_OUT, bias=False)

    @staticmethod
    def stack(x):  # StackAudioFrames
        b, t, c = x.shape
        t_pad = (t + STACK - 1) // STACK * STACK
        x = F.pad(x, (0, 0, 0, t_pad - t))
        return x.view(b, t_pad // STACK, c * STACK)

    def forward(self, x):
        x = self.ln_pre(self.stack(x))
        h = self.linear_1(x)
        h, gate = h.chunk(2, dim=-1)  # SwiGLU: silu(gate) * x
        h = F.silu(gate) * h
        return self.linear_2(self.ln_mid(h))


def whisper_encoder(n_pos):
    cfg = WhisperConfig(d_model=D, encoder_layers=LAYERS, encoder_attention_heads=HEADS, encoder_ffn_dim=4 * D,
                        num_mel_bins=MELS, max_source_positions=n_pos, activation_function="gelu")
    return WhisperEncoder(cfg).double().eval()


def qwen2a_encoder(n_pos):
    cfg = Qwen2AudioEncoderConfig(d_model=D, encoder_layers=LAYERS, encoder_attention_heads=HEADS,
                                  encoder_ffn_dim=4 * D, num_mel_bins=MELS, max_source_positions=n_pos,
                                  activation_function="gelu")
    return Qwen2AudioEncoder(cfg).double().eval()


def shorter(enc_full, make, n_pos):
    enc = make(n_pos)
    sd = dict(enc_full.state_dict())
    sd["embed_positions.weight"] = sd["embed_positions.weight"][:n_pos]
    enc.load_state_dict(sd)
    return enc


def write_gguf(path, proj, enc, adapter, edit=None):
    """llama.cpp's mmproj layout (convert_hf_to_gguf.py WhisperEncoderModel / Ultravox)."""
    edit = edit or {}
    w = gguf.GGUFWriter(path, "clip")
    w.add_name("omnirt audio adapter fixture")
    kv = {
        "clip.has_audio_encoder": ("bool", True),
        "clip.projector_type": ("str", proj),
        "clip.audio.num_mel_bins": ("u32", MELS),
        "clip.audio.embedding_length": ("u32", D),
        "clip.audio.feed_forward_length": ("u32", 4 * D),
        "clip.audio.block_count": ("u32", LAYERS),
        "clip.audio.attention.head_count": ("u32", HEADS),
        "clip.audio.attention.layer_norm_epsilon": ("f32", 1e-5),
        "clip.audio.projection_dim": ("u32", N_OUT),
    }
    if proj == "ultravox":
        kv["clip.audio.projector.stack_factor"] = ("u32", STACK)
    kv.update(edit.get("kv", {}))
    for k, (t, v) in kv.items():
        if v is None:
            continue
        {"bool": w.add_bool, "str": w.add_string, "u32": w.add_uint32, "f32": w.add_float32}[t](k, v)
    sd = {k: v.detach().numpy() for k, v in enc.state_dict().items()}
    t = {}
    t["a.conv1d.1.weight"] = sd["conv1.weight"].astype(np.float16)
    t["a.conv1d.1.bias"] = sd["conv1.bias"][:, None].astype(np.float32)
    t["a.conv1d.2.weight"] = sd["conv2.weight"].astype(np.float16)
    t["a.conv1d.2.bias"] = sd["conv2.bias"][:, None].astype(np.float32)
    t["a.position_embd.weight"] = sd["embed_positions.weight"].astype(np.float32)
    for i in range(LAYERS):
        p, b = f"layers.{i}.", f"a.blk.{i}."
        for src, dst in [("self_attn_layer_norm", "ln1"), ("final_layer_norm", "ln2")]:
            t[b + dst + ".weight"] = sd[p + src + ".weight"].astype(np.float32)
            t[b + dst + ".bias"] = sd[p + src + ".bias"].astype(np.float32)
        for src, dst in [("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"),
                         ("self_attn.v_proj", "attn_v"), ("self_attn.out_proj", "attn_out"),
                         ("fc1", "ffn_up"), ("fc2", "ffn_down")]:
            t[b + dst + ".weight"] = sd[p + src + ".weight"].astype(np.float16)
            if p + src + ".bias" in sd:
                t[b + dst + ".bias"] = sd[p + src + ".bias"].astype(np.float32)
    t["a.post_ln.weight"] = sd["layer_norm.weight"].astype(np.float32)
    t["a.post_ln.bias"] = sd["layer_norm.bias"].astype(np.float32)
    ad = {k: v.detach().numpy() for k, v in adapter.state_dict().items()}
    if proj == "ultravox":
        t["mm.a.norm_pre.weight"] = ad["ln_pre.weight"].astype(np.float32)
        t["mm.a.mlp.1.weight"] = ad["linear_1.weight"].astype(np.float16)
        t["mm.a.norm_mid.weight"] = ad["ln_mid.weight"].astype(np.float32)
        t["mm.a.mlp.2.weight"] = ad["linear_2.weight"].astype(np.float16)
    else:
        t["mm.a.fc.weight"] = ad["linear.weight"].astype(np.float16)
        t["mm.a.fc.bias"] = ad["linear.bias"].astype(np.float32)
    for name in edit.get("drop", []):
        del t[name]
    for name, arr in edit.get("replace", {}).items():
        t[name] = arr
    if edit.get("no_tensors"):  # a file that fails on its keys needs no weights
        t = {}
    for name, arr in t.items():
        w.add_tensor(name, np.ascontiguousarray(arr))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    mels = {n: (torch.rand((1, MELS, n), generator=gen, dtype=torch.float64) * 2.5 - 1.0) for n in (64, 40)}
    for n, m in mels.items():
        m[0].T.numpy().astype(np.float32).tofile(os.path.join(OUT, f"mel_{n}.f32"))
    meta = {"d": D, "n_out": N_OUT, "stack": STACK, "hidden": HIDDEN, "cases": {}}

    # Ultravox.
    enc = whisper_encoder(CTX)
    randomize(enc, gen)
    proj = UltravoxProjector().double().eval()
    with torch.no_grad():
        proj.ln_pre.weight.copy_(1 + 0.1 * torch.randn(D * STACK, generator=gen, dtype=torch.float64))
        proj.ln_mid.weight.copy_(1 + 0.1 * torch.randn(HIDDEN // 2, generator=gen, dtype=torch.float64))
        proj.linear_1.weight.copy_(f16(torch.randn(HIDDEN, D * STACK, generator=gen, dtype=torch.float64) / (D * STACK) ** 0.5))
        proj.linear_2.weight.copy_(f16(torch.randn(N_OUT, HIDDEN // 2, generator=gen, dtype=torch.float64) / (HIDDEN // 2) ** 0.5))
    write_gguf(os.path.join(OUT, "ultravox.gguf"), "ultravox", enc, proj)
    with torch.no_grad():
        for n, m in mels.items():
            e = enc if n == 2 * CTX else shorter(enc, whisper_encoder, n // 2)
            out = proj(e(m.to(torch.float64)).last_hidden_state)[0]
            out.numpy().astype(np.float32).tofile(os.path.join(OUT, f"ultravox_out_{n}.f32"))
            meta["cases"][f"ultravox_{n}"] = {"rows": out.shape[0], "max_abs": float(out.abs().max())}

    # Qwen2-Audio.
    qenc = qwen2a_encoder(CTX)
    randomize(qenc, gen)

    class QProj(torch.nn.Module):  # Qwen2AudioMultiModalProjector's single linear
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(D, N_OUT, bias=True)

        def forward(self, x):
            return self.linear(x)

    from transformers.models.qwen2_audio.modeling_qwen2_audio import Qwen2AudioMultiModalProjector
    qproj = QProj().double().eval()
    with torch.no_grad():
        qproj.linear.weight.copy_(f16(torch.randn(N_OUT, D, generator=gen, dtype=torch.float64) / D ** 0.5))
        qproj.linear.bias.copy_(0.1 * torch.randn(N_OUT, generator=gen, dtype=torch.float64))
    # The reference projector is transformers' own module, given the same weights.
    from transformers import Qwen2AudioConfig
    qcfg = Qwen2AudioConfig(audio_config={"d_model": D}, text_config={"hidden_size": N_OUT})
    hf_proj = Qwen2AudioMultiModalProjector(qcfg).double().eval()
    hf_proj.load_state_dict(qproj.state_dict())
    write_gguf(os.path.join(OUT, "qwen2a.gguf"), "qwen2a", qenc, qproj)
    with torch.no_grad():
        for n, m in mels.items():
            e = qenc if n == 2 * CTX else shorter(qenc, qwen2a_encoder, n // 2)
            out = hf_proj(e(m.to(torch.float64)).last_hidden_state)[0]
            out.numpy().astype(np.float32).tofile(os.path.join(OUT, f"qwen2a_out_{n}.f32"))
            meta["cases"][f"qwen2a_{n}"] = {"rows": out.shape[0], "max_abs": float(out.abs().max())}

    # Qwen2.5-Omni's chunked audio encoder, stored in the qwen2a layout.
    from transformers.models.qwen2_5_omni.configuration_qwen2_5_omni import Qwen2_5OmniAudioEncoderConfig
    from transformers.models.qwen2_5_omni.modeling_qwen2_5_omni import Qwen2_5OmniAudioEncoder
    ocfg = Qwen2_5OmniAudioEncoderConfig(d_model=D, encoder_layers=LAYERS, encoder_attention_heads=HEADS,
                                         encoder_ffn_dim=4 * D, num_mel_bins=MELS, max_source_positions=CTX,
                                         n_window=16, output_dim=N_OUT)
    ocfg._attn_implementation = "eager"
    oenc = Qwen2_5OmniAudioEncoder(ocfg).double().eval()
    with torch.no_grad():
        for name, p in oenc.named_parameters():
            if p.dim() >= 2:
                p.copy_(f16(torch.randn(p.shape, generator=gen, dtype=torch.float64) / p[0].numel() ** 0.5))
            elif "norm" in name and name.endswith("weight") or name.startswith("ln_post.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen, dtype=torch.float64))

    class Renamed:  # Qwen2.5-Omni's names -> the Whisper-style names write_gguf reads
        def __init__(self, sd):
            self.sd = sd

        def state_dict(self):
            return self.sd

    osd = dict(oenc.state_dict())
    osd["embed_positions.weight"] = oenc.positional_embedding.positional_embedding.clone()
    osd["layer_norm.weight"], osd["layer_norm.bias"] = osd.pop("ln_post.weight"), osd.pop("ln_post.bias")
    oproj = {"linear.weight": osd.pop("proj.weight"), "linear.bias": osd.pop("proj.bias")}
    write_gguf(os.path.join(OUT, "qwen25omni.gguf"), "qwen2a", Renamed(osd), Renamed(oproj))
    omel = torch.rand((MELS, 80), generator=gen, dtype=torch.float64) * 2.5 - 1.0
    omel.T.numpy().astype(np.float32).tofile(os.path.join(OUT, "mel_80.f32"))
    with torch.no_grad():
        out = oenc(input_features=omel, feature_lens=torch.tensor([80])).last_hidden_state
    out.numpy().astype(np.float32).tofile(os.path.join(OUT, "qwen25omni_out_80.f32"))
    meta["cases"]["qwen25omni_80"] = {"rows": out.shape[0], "max_abs": float(out.abs().max()), "chunk_frames": 32}

    # Broken files (the loader's messages).
    broken = {
        "no_audio": ("qwen2a", {"kv": {"clip.has_audio_encoder": ("bool", False)}, "no_tensors": True}),
        "bad_projector": ("qwen2a", {"kv": {"clip.projector_type": ("str", "mlp")}, "no_tensors": True}),
        "missing_key": ("qwen2a", {"kv": {"clip.audio.block_count": ("u32", None)}, "no_tensors": True}),
        "ff_not_4d": ("qwen2a", {"kv": {"clip.audio.feed_forward_length": ("u32", 100)}, "no_tensors": True}),
        "missing_tensor": ("qwen2a", {"drop": ["a.blk.1.ffn_down.weight"]}),
        "bad_shape": ("qwen2a", {"replace": {"mm.a.fc.weight": np.zeros((N_OUT, D + 1), np.float16)}}),
        "no_stack_factor": ("ultravox", {"kv": {"clip.audio.projector.stack_factor": ("u32", None)}, "no_tensors": True}),
    }
    for name, (proj_type, edit) in broken.items():
        e, p = (qenc, qproj) if proj_type == "qwen2a" else (enc, proj)
        write_gguf(os.path.join(OUT, f"broken_{name}.gguf"), proj_type, e, p, edit)
    with open(os.path.join(OUT, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(json.dumps(meta))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Golden fixtures for the transformer forward pass: tiny random models as GGUF + HF logits.

For every fixture this writes, under tests/data/golden/ (format: docs/GOLDEN.md):
  <name>.gguf        a llama.cpp-compatible GGUF (llama.cpp tensor names, metadata keys and
                     conventions: llama q/k permuted for interleaved rope, Gemma norms stored +1,
                     tied models without output.weight)
  <name>.logits.f32  float32 little-endian [n_tokens, n_vocab], logits of the Hugging Face
                     transformers model class (eager attention, float32) on the same weights
  <name>.json        tokens, greedy continuation, hyperparameters
and index.json listing all fixtures.

The reference is transformers. Two extra checks make the fixture trustworthy:
  1. the GGUF is re-read with gguf.GGUFReader, dequantized, turned back into an HF state dict,
     and HF re-run: logits must equal the stored ones (< 1e-5) -> file and logits agree;
  2. an independent float64 numpy forward pass that follows llama.cpp's semantics directly on
     the GGUF tensors (interleaved/NEOX rope, stored norm weights as-is, gemma3 SWA pattern
     il % 6 != 5, window |p_q - p_k| < W) must match HF (< 1e-4) -> conventions are right.

Quantized weights are not quantized floats: random valid blocks (random bytes for the quant
fields, finite normal f16 scales sized for the target std) are written, and their gguf-py
dequantization is what the HF model gets.

Usage: python3 tools/make_golden.py [--out tests/data/golden] [--only NAME ...]
Needs torch, transformers, gguf, numpy. Deterministic: fixed seeds, CPU, float32.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import zlib

import numpy as np
import torch

import gguf
from gguf import GGMLQuantizationType as QT

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

N_TOKENS = 24
N_GREEDY_PROMPT = 8
N_GREEDY = 16
TOKEN_SEED = 1234
BOS_ID, EOS_ID = 256, 257

SMALL = dict(n_embd=64, n_head=4, n_head_kv=2, head_dim=16, n_ff=128)
BIG = dict(n_embd=256, n_head=4, n_head_kv=2, head_dim=64, n_ff=256)  # k-quants: rows % 256 == 0

# name, arch, weight type of 2-D matrices, sizes
FIXTURES = [
    ("llama_f32", "llama", "F32", SMALL),
    ("llama_f16", "llama", "F16", SMALL),
    ("llama_bf16", "llama", "BF16", SMALL),
    ("llama_q8_0", "llama", "Q8_0", SMALL),
    ("llama_q4_0", "llama", "Q4_0", SMALL),
    ("llama_q5_0", "llama", "Q5_0", SMALL),
    ("qwen2_f32", "qwen2", "F32", SMALL),
    ("gemma3_f32", "gemma3", "F32", SMALL),
    ("gemma3_q4_k", "gemma3", "Q4_K", BIG),
    ("qwen2_q5_k", "qwen2", "Q5_K", BIG),
    ("llama_q6_k", "llama", "Q6_K", BIG),
]

ARCH = {
    "llama": dict(n_layer=2, rms_eps=1e-5, rope_base=10000.0, rope_style="normal", tied=False,
                  qkv_bias=False, gemma=False),
    "qwen2": dict(n_layer=2, rms_eps=1e-6, rope_base=1000000.0, rope_style="neox", tied=True,
                  qkv_bias=True, gemma=False),
    "gemma3": dict(n_layer=6, rms_eps=1e-6, rope_base=1000000.0, rope_base_swa=10000.0,
                   sliding_window=4, rope_style="neox", tied=True, qkv_bias=False, gemma=True),
}
N_VOCAB, N_CTX = 320, 64

# llama.cpp's LlamaFileType values for general.file_type
FILE_TYPE = {"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 7, "Q5_0": 8, "Q6_K": 18, "BF16": 32,
             "Q4_K": 15, "Q5_K": 17}

# Byte offsets of the f16 scale fields inside one block, per type (ggml block layouts):
#   Q8_0 {d, qs[32]}  Q4_0 {d, qs[16]}  Q5_0 {d, qh[4], qs[16]}
#   Q4_K {d, dmin, scales[12], qs[128]}  Q5_K {d, dmin, scales[12], qh[32], qs[128]}
#   Q6_K {ql[128], qh[64], scales[16] (int8), d}
F16_FIELDS = {"Q8_0": [0], "Q4_0": [0], "Q5_0": [0], "Q4_K": [0, 2], "Q5_K": [0, 2], "Q6_K": [208]}
MIN_NORMAL_F16 = 2.0 ** -14


# ----------------------------------------------------------------------------------------------
# Conventions
# ----------------------------------------------------------------------------------------------

def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF q/k rows -> llama.cpp rows (convert_hf_to_gguf's LlamaModel.permute).
    HF row (h, half, i) lands at GGUF row (h, i, half): rotate_half pairs (i, i+d/2) become
    adjacent pairs (2i, 2i+1), which is what llama.cpp's normal (interleaved) rope rotates."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Inverse of permute: GGUF rows -> HF rows."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def bytes_to_unicode() -> list[str]:
    """GPT-2's byte -> printable symbol table, in byte order 0..255."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, (chr(c) for c in cs)))
    return [table[b] for b in range(256)]


def swa_layers(arch: str, n_layer: int) -> list[bool]:
    """llama.cpp's fixed gemma3 pattern: every 6th layer (il % 6 == 5) is global."""
    if arch != "gemma3":
        return [False] * n_layer
    return [il % 6 != 5 for il in range(n_layer)]


def full_config(arch: str, sizes: dict) -> dict:
    a = ARCH[arch]
    cfg = dict(arch=arch, n_vocab=N_VOCAB, n_ctx=N_CTX, n_layer=a["n_layer"], **sizes,
               rms_eps=a["rms_eps"], rope_style=a["rope_style"], rope_freq_base=a["rope_base"],
               rope_dim=sizes["head_dim"], tied_embeddings=a["tied"], qkv_bias=a["qkv_bias"],
               attn_scale=1.0 / math.sqrt(sizes["head_dim"]),
               ffn_act="gelu_tanh" if a["gemma"] else "silu",
               embd_scale=math.sqrt(sizes["n_embd"]) if a["gemma"] else 1.0,
               bos_id=BOS_ID, eos_id=EOS_ID)
    if arch == "gemma3":
        cfg.update(rope_freq_base_swa=a["rope_base_swa"], sliding_window=a["sliding_window"],
                   norm_weights_stored_plus_one=True, qk_norm=True, post_norms=True)
    cfg["swa_layers"] = swa_layers(arch, cfg["n_layer"])
    return cfg


# ----------------------------------------------------------------------------------------------
# Random weights in a GGUF type. Each returns (data for GGUFWriter, raw_dtype or None, f32 values)
# with values in GGUF numpy layout [n_out, n_in].
# ----------------------------------------------------------------------------------------------

def f16_at(blocks: np.ndarray, off: int) -> np.ndarray:
    return blocks[:, off:off + 2].copy().view(np.float16)[:, 0].astype(np.float32)


def set_f16_at(blocks: np.ndarray, off: int, vals: np.ndarray) -> None:
    blocks[:, off:off + 2] = vals.astype(np.float16).reshape(-1, 1).view(np.uint8)


def random_quant(rng: np.random.Generator, qtype: str, n_out: int, n_in: int, std: float):
    qt = QT[qtype]
    blk, tsz = gguf.GGML_QUANT_SIZES[qt]
    assert n_in % blk == 0, (qtype, n_in)
    nb = n_out * (n_in // blk)
    blocks = rng.integers(0, 256, size=(nb, tsz), dtype=np.uint8)
    if qtype == "Q6_K":
        # int8 sub-block scales in [-64, 63] keep d a normal f16 at the target std
        blocks[:, 192:208] = rng.integers(-64, 64, size=(nb, 16), dtype=np.int8).view(np.uint8)
    fields = F16_FIELDS[qtype]
    mag = rng.uniform(0.5, 1.5, size=nb).astype(np.float32)
    if qtype in ("Q4_K", "Q5_K"):
        # d, dmin >= 0 as llama.cpp's quantizer writes them; dmin sized so that the
        # per-sub-block offset -dmin*m cancels the mean of d*sc*q on average
        q_mean = 7.5 if qtype == "Q4_K" else 15.5
        set_f16_at(blocks, 0, mag)
        set_f16_at(blocks, 2, mag * q_mean * rng.uniform(0.8, 1.2, size=nb).astype(np.float32))
    else:
        sign = np.where(rng.random(nb) < 0.5, -1.0, 1.0).astype(np.float32)
        set_f16_at(blocks, fields[0], mag * sign)
    # calibrate: dequantization is linear in the f16 scales, so rescale them to the target std
    vals = gguf.quants.dequantize(blocks, qt)
    factor = std / float(np.sqrt(np.mean(vals.astype(np.float64) ** 2)))
    for off in fields:
        v = f16_at(blocks, off) * factor
        v = np.where(np.abs(v) < MIN_NORMAL_F16, np.copysign(MIN_NORMAL_F16, v), v)
        assert np.all(np.isfinite(v.astype(np.float16)))
        set_f16_at(blocks, off, v)
    data = blocks.reshape(n_out, (n_in // blk) * tsz)
    vals = gguf.quants.dequantize(data, qt).astype(np.float32)
    assert vals.shape == (n_out, n_in) and np.all(np.isfinite(vals))
    return data, qt, vals


def random_matrix(rng, wtype: str, n_out: int, n_in: int, std: float):
    if wtype in F16_FIELDS:
        return random_quant(rng, wtype, n_out, n_in, std)
    w = (rng.standard_normal((n_out, n_in)) * std).astype(np.float32)
    if wtype == "F32":
        return w, None, w
    if wtype == "F16":
        h = w.astype(np.float16)
        return h, None, h.astype(np.float32)
    if wtype == "BF16":
        raw = gguf.quants.quantize(w, QT.BF16)
        return raw, QT.BF16, gguf.quants.dequantize(raw, QT.BF16).astype(np.float32)
    raise ValueError(wtype)


def random_norm(rng, n: int, gemma: bool) -> np.ndarray:
    """The multiplier the runtime applies, as stored in the GGUF. In [0.5, 2] so that for
    Gemma the HF weight s - 1 is exact in f32 and HF's 1 + (s - 1) gives back s bit-exactly."""
    s = (1.0 + 0.1 * rng.standard_normal(n)).clip(0.6, 1.5).astype(np.float32)
    return s


def make_tensors(name: str, arch: str, wtype: str, cfg: dict):
    """GGUF tensors: name -> (data, raw_dtype, f32 values in GGUF layout)."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    gem = ARCH[arch]["gemma"]
    E, F, V = cfg["n_embd"], cfg["n_ff"], cfg["n_vocab"]
    QD, KD = cfg["n_head"] * cfg["head_dim"], cfg["n_head_kv"] * cfg["head_dim"]
    t = {}

    def mat(tname, n_out, n_in, std=None):
        t[tname] = random_matrix(rng, wtype, n_out, n_in, std if std is not None else 1.0 / math.sqrt(n_in))

    def f32(tname, v):
        v = np.ascontiguousarray(v, dtype=np.float32)
        t[tname] = (v, None, v)

    mat("token_embd.weight", V, E, std=1.0 / math.sqrt(E) if not gem else 0.5 / math.sqrt(E))
    for il in range(cfg["n_layer"]):
        p = f"blk.{il}."
        f32(p + "attn_norm.weight", random_norm(rng, E, gem))
        mat(p + "attn_q.weight", QD, E)
        mat(p + "attn_k.weight", KD, E)
        mat(p + "attn_v.weight", KD, E)
        mat(p + "attn_output.weight", E, QD)
        if cfg["qkv_bias"]:
            f32(p + "attn_q.bias", 0.1 * rng.standard_normal(QD))
            f32(p + "attn_k.bias", 0.1 * rng.standard_normal(KD))
            f32(p + "attn_v.bias", 0.1 * rng.standard_normal(KD))
        if gem:
            f32(p + "attn_q_norm.weight", random_norm(rng, cfg["head_dim"], gem))
            f32(p + "attn_k_norm.weight", random_norm(rng, cfg["head_dim"], gem))
            f32(p + "post_attention_norm.weight", random_norm(rng, E, gem))
            f32(p + "post_ffw_norm.weight", random_norm(rng, E, gem))
        f32(p + "ffn_norm.weight", random_norm(rng, E, gem))
        mat(p + "ffn_gate.weight", F, E)
        mat(p + "ffn_up.weight", F, E)
        mat(p + "ffn_down.weight", E, F)
    f32("output_norm.weight", random_norm(rng, E, gem))
    if not cfg["tied_embeddings"]:
        mat("output.weight", V, E)
    return t


# ----------------------------------------------------------------------------------------------
# GGUF writing
# ----------------------------------------------------------------------------------------------

class Writer(gguf.GGUFWriter):
    """GGUFWriter that can also write an empty typed array (tokenizer.ggml.merges = [])."""

    def _pack_val(self, val, vtype, add_vtype, sub_type=None):
        if vtype == gguf.GGUFValueType.ARRAY and sub_type is not None and len(val) == 0:
            out = bytearray()
            if add_vtype:
                out += self._pack("I", vtype)
            out += self._pack("I", sub_type)
            out += self._pack("Q", 0)
            return bytes(out)
        return super()._pack_val(val, vtype, add_vtype, sub_type)


def tokenizer_vocab():
    toks = bytes_to_unicode() + ["<|bos|>", "<|eos|>"]
    types = [1] * 256 + [3, 3]
    while len(toks) < N_VOCAB:
        toks.append(f"<unused_{len(toks) - 258}>")
        types.append(5)
    return toks, types


def write_gguf(path: str, name: str, wtype: str, cfg: dict, tensors: dict) -> None:
    arch = cfg["arch"]
    w = Writer(path, arch)
    w.add_name(f"omnirt golden {name}")
    w.add_file_type(FILE_TYPE[wtype])
    if wtype in F16_FIELDS:
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
    w.add_context_length(cfg["n_ctx"])
    w.add_embedding_length(cfg["n_embd"])
    w.add_block_count(cfg["n_layer"])
    w.add_feed_forward_length(cfg["n_ff"])
    w.add_head_count(cfg["n_head"])
    w.add_head_count_kv(cfg["n_head_kv"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_layer_norm_rms_eps(cfg["rms_eps"])
    w.add_rope_freq_base(cfg["rope_freq_base"])
    if arch == "llama":
        w.add_rope_dimension_count(cfg["rope_dim"])
    if arch == "gemma3":
        w.add_sliding_window(cfg["sliding_window"])
    toks, types = tokenizer_vocab()
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(toks)
    w.add_token_types(types)
    w.add_key_value(gguf.Keys.Tokenizer.MERGES, [], gguf.GGUFValueType.ARRAY,
                    sub_type=gguf.GGUFValueType.STRING)
    w.add_bos_token_id(BOS_ID)
    w.add_eos_token_id(EOS_ID)
    w.add_add_bos_token(False)
    for tname, (data, raw_dtype, _) in tensors.items():
        w.add_tensor(tname, data, raw_dtype=raw_dtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read_gguf(path: str):
    """-> (metadata dict, {tensor name: f32 values in GGUF layout}, {tensor name: type name})."""
    r = gguf.GGUFReader(path)
    meta = {}
    for k, f in r.fields.items():
        if k.startswith("GGUF.") or k in ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type"):
            continue
        meta[k] = f.contents()
    vals, types = {}, {}
    for t in r.tensors:
        v = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32)
        vals[t.name] = v.reshape([int(x) for x in reversed(t.shape)])
        types[t.name] = t.tensor_type.name
    return meta, vals, types


def config_from_meta(meta: dict) -> dict:
    """Hyperparameters as llama.cpp would derive them from the file (no access to FIXTURES)."""
    arch = meta["general.architecture"]
    g = lambda k: meta[f"{arch}.{k}"]  # noqa: E731
    cfg = dict(arch=arch, n_ctx=g("context_length"), n_embd=g("embedding_length"),
               n_layer=g("block_count"), n_ff=g("feed_forward_length"), n_head=g("attention.head_count"),
               n_head_kv=g("attention.head_count_kv"), head_dim=g("attention.key_length"),
               rms_eps=g("attention.layer_norm_rms_epsilon"), rope_freq_base=g("rope.freq_base"))
    assert g("attention.value_length") == cfg["head_dim"]
    if arch == "gemma3":
        cfg["sliding_window"] = g("attention.sliding_window")
        cfg["rope_freq_base_swa"] = 10000.0  # llama.cpp's fixed value for gemma3
    cfg["swa_layers"] = swa_layers(arch, cfg["n_layer"])
    return cfg


# ----------------------------------------------------------------------------------------------
# Hugging Face reference
# ----------------------------------------------------------------------------------------------

def hf_model(cfg: dict, vals: dict):
    """transformers model whose weights are the GGUF tensor values `vals` (GGUF layout),
    converted the way transformers' own GGUF loader / convert_hf_to_gguf imply."""
    from transformers import (Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM,
                              Qwen2Config, Qwen2ForCausalLM)
    arch = cfg["arch"]
    tied = "output.weight" not in vals
    V = vals["token_embd.weight"].shape[0]
    common = dict(vocab_size=V, hidden_size=cfg["n_embd"], intermediate_size=cfg["n_ff"],
                  num_hidden_layers=cfg["n_layer"], num_attention_heads=cfg["n_head"],
                  num_key_value_heads=cfg["n_head_kv"], head_dim=cfg["head_dim"],
                  max_position_embeddings=cfg["n_ctx"], rms_norm_eps=float(cfg["rms_eps"]),
                  tie_word_embeddings=tied, bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=None)
    if arch == "llama":
        hc = LlamaConfig(**common, hidden_act="silu", attention_bias=False, mlp_bias=False,
                         rope_parameters={"rope_type": "default", "rope_theta": float(cfg["rope_freq_base"])})
        cls = LlamaForCausalLM
    elif arch == "qwen2":
        hc = Qwen2Config(**common, hidden_act="silu", use_sliding_window=False,
                         rope_parameters={"rope_type": "default", "rope_theta": float(cfg["rope_freq_base"])})
        cls = Qwen2ForCausalLM
    elif arch == "gemma3":
        hc = Gemma3TextConfig(
            **common, hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=cfg["head_dim"],
            sliding_window=int(cfg["sliding_window"]),
            layer_types=["sliding_attention" if s else "full_attention" for s in cfg["swa_layers"]],
            rope_parameters={
                "full_attention": {"rope_type": "default", "rope_theta": float(cfg["rope_freq_base"])},
                "sliding_attention": {"rope_type": "default", "rope_theta": float(cfg["rope_freq_base_swa"])}},
            final_logit_softcapping=None, attn_logit_softcapping=None, attention_bias=False)
        cls = Gemma3ForCausalLM
    else:
        raise ValueError(arch)
    hc._attn_implementation = "eager"
    torch.manual_seed(0)
    model = cls(hc).float().eval()

    gem = arch == "gemma3"
    nrm = (lambda v: v - np.float32(1.0)) if gem else (lambda v: v)
    sd = {"model.embed_tokens.weight": vals["token_embd.weight"],
          "model.norm.weight": nrm(vals["output_norm.weight"])}
    if not tied:
        sd["lm_head.weight"] = vals["output.weight"]
    for il in range(cfg["n_layer"]):
        p, h = f"blk.{il}.", f"model.layers.{il}."
        q, k = vals[p + "attn_q.weight"], vals[p + "attn_k.weight"]
        if arch == "llama":
            q, k = unpermute(q, cfg["n_head"]), unpermute(k, cfg["n_head_kv"])
        sd[h + "self_attn.q_proj.weight"] = q
        sd[h + "self_attn.k_proj.weight"] = k
        sd[h + "self_attn.v_proj.weight"] = vals[p + "attn_v.weight"]
        sd[h + "self_attn.o_proj.weight"] = vals[p + "attn_output.weight"]
        if arch == "qwen2":
            for x in "qkv":
                sd[h + f"self_attn.{x}_proj.bias"] = vals[p + f"attn_{x}.bias"]
        sd[h + "mlp.gate_proj.weight"] = vals[p + "ffn_gate.weight"]
        sd[h + "mlp.up_proj.weight"] = vals[p + "ffn_up.weight"]
        sd[h + "mlp.down_proj.weight"] = vals[p + "ffn_down.weight"]
        sd[h + "input_layernorm.weight"] = nrm(vals[p + "attn_norm.weight"])
        if gem:
            sd[h + "self_attn.q_norm.weight"] = nrm(vals[p + "attn_q_norm.weight"])
            sd[h + "self_attn.k_norm.weight"] = nrm(vals[p + "attn_k_norm.weight"])
            sd[h + "post_attention_layernorm.weight"] = nrm(vals[p + "post_attention_norm.weight"])
            sd[h + "pre_feedforward_layernorm.weight"] = nrm(vals[p + "ffn_norm.weight"])
            sd[h + "post_feedforward_layernorm.weight"] = nrm(vals[p + "post_ffw_norm.weight"])
        else:
            sd[h + "post_attention_layernorm.weight"] = nrm(vals[p + "ffn_norm.weight"])
    sd = {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    allowed_missing = {"lm_head.weight"} if tied else set()
    assert set(missing) <= allowed_missing and not unexpected, (missing, unexpected)
    if tied:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return model


@torch.no_grad()
def hf_logits(model, tokens: list[int]) -> np.ndarray:
    ids = torch.tensor([tokens], dtype=torch.long)
    return model(input_ids=ids, use_cache=False).logits[0].float().numpy()


@torch.no_grad()
def hf_greedy(model, prompt: list[int], n: int):
    """Greedy decoding by full recomputation each step (no KV cache involved)."""
    seq, margins = list(prompt), []
    for _ in range(n):
        last = hf_logits(model, seq)[-1]
        top2 = np.sort(last)[-2:]
        seq.append(int(np.argmax(last)))
        margins.append(float(top2[1] - top2[0]))
    return seq[len(prompt):], margins


# ----------------------------------------------------------------------------------------------
# Independent llama.cpp-semantics forward pass (float64 numpy, straight from GGUF tensors)
# ----------------------------------------------------------------------------------------------

def np_forward(cfg: dict, vals: dict, tokens: list[int], rope_style: str | None = None) -> np.ndarray:
    arch = cfg["arch"]
    neox = (rope_style or ("normal" if arch == "llama" else "neox")) == "neox"
    gem = arch == "gemma3"
    v = {k: x.astype(np.float64) for k, x in vals.items()}
    T, H, HK, D, E = len(tokens), cfg["n_head"], cfg["n_head_kv"], cfg["head_dim"], cfg["n_embd"]
    eps = float(cfg["rms_eps"])

    def rms(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    def rope(x, base):  # x [T, heads, D]
        inv = base ** (-np.arange(0, D, 2, dtype=np.float64) / D)  # [D/2]
        ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]  # [T, D/2]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        y = x.copy()
        if not neox:  # normal: rotate adjacent pairs (2i, 2i+1)
            a, b = x[..., 0::2], x[..., 1::2]
            y[..., 0::2], y[..., 1::2] = a * c - b * s, a * s + b * c
        else:  # NEOX: rotate (i, i + D/2)
            a, b = x[..., :D // 2], x[..., D // 2:]
            y[..., :D // 2], y[..., D // 2:] = a * c - b * s, a * s + b * c
        return y

    def gelu_tanh(x):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))

    x = v["token_embd.weight"][tokens]
    if gem:
        x = x * math.sqrt(E)
    pos = np.arange(T)
    for il in range(cfg["n_layer"]):
        p = f"blk.{il}."
        h = rms(x, v[p + "attn_norm.weight"])
        q, k, vv = h @ v[p + "attn_q.weight"].T, h @ v[p + "attn_k.weight"].T, h @ v[p + "attn_v.weight"].T
        if p + "attn_q.bias" in v:
            q, k, vv = q + v[p + "attn_q.bias"], k + v[p + "attn_k.bias"], vv + v[p + "attn_v.bias"]
        q, k, vv = q.reshape(T, H, D), k.reshape(T, HK, D), vv.reshape(T, HK, D)
        if gem:
            q, k = rms(q, v[p + "attn_q_norm.weight"]), rms(k, v[p + "attn_k_norm.weight"])
        swa = cfg["swa_layers"][il]
        base = cfg["rope_freq_base_swa"] if swa else cfg["rope_freq_base"]
        q, k = rope(q, float(base)), rope(k, float(base))
        masked = pos[None, :] > pos[:, None]  # [q, k]
        if swa:
            masked |= (pos[:, None] - pos[None, :]) >= cfg["sliding_window"]
        out = np.empty((T, H, D))
        for hh in range(H):
            kh = hh // (H // HK)
            sc = (q[:, hh, :] @ k[:, kh, :].T) / math.sqrt(D)
            sc = np.where(masked, -np.inf, sc)
            sc = np.exp(sc - sc.max(axis=1, keepdims=True))
            sc /= sc.sum(axis=1, keepdims=True)
            out[:, hh, :] = sc @ vv[:, kh, :]
        o = out.reshape(T, H * D) @ v[p + "attn_output.weight"].T
        if gem:
            o = rms(o, v[p + "post_attention_norm.weight"])
        x = x + o
        h = rms(x, v[p + "ffn_norm.weight"])
        g, u = h @ v[p + "ffn_gate.weight"].T, h @ v[p + "ffn_up.weight"].T
        act = gelu_tanh(g) if gem else g / (1.0 + np.exp(-g))
        f = (act * u) @ v[p + "ffn_down.weight"].T
        if gem:
            f = rms(f, v[p + "post_ffw_norm.weight"])
        x = x + f
    x = rms(x, v["output_norm.weight"])
    return x @ v.get("output.weight", v["token_embd.weight"]).T


# ----------------------------------------------------------------------------------------------

def make_fixture(out_dir: str, name: str, arch: str, wtype: str, sizes: dict) -> dict:
    cfg = full_config(arch, sizes)
    tensors = make_tensors(name, arch, wtype, cfg)
    gguf_path = os.path.join(out_dir, name + ".gguf")
    write_gguf(gguf_path, name, wtype, cfg, tensors)

    vals = {k: t[2] for k, t in tensors.items()}
    tokens = [int(x) for x in np.random.default_rng(TOKEN_SEED).integers(0, 256, size=N_TOKENS)]
    model = hf_model(cfg, vals)
    logits = hf_logits(model, tokens).astype("<f4")
    assert logits.shape == (N_TOKENS, N_VOCAB) and np.all(np.isfinite(logits))
    greedy_prompt = tokens[:N_GREEDY_PROMPT]
    greedy, margins = hf_greedy(model, greedy_prompt, N_GREEDY)
    # the greedy continuation must agree with the full-sequence logits where they overlap
    assert greedy[0] == int(np.argmax(logits[N_GREEDY_PROMPT - 1]))

    # --- self-check 1: the written file alone reproduces the stored logits
    meta, fvals, ftypes = read_gguf(gguf_path)
    fcfg = config_from_meta(meta)
    for k in ("n_embd", "n_layer", "n_ff", "n_head", "n_head_kv", "head_dim", "n_ctx", "swa_layers"):
        assert fcfg[k] == cfg[k], (k, fcfg[k], cfg[k])
    assert set(fvals) == set(tensors)
    for k in fvals:
        assert np.array_equal(fvals[k], vals[k]), k
    relogits = hf_logits(hf_model(fcfg, fvals), tokens)
    d_file = float(np.max(np.abs(relogits - logits)))
    assert d_file < 1e-5, (name, d_file)

    # --- self-check 2: llama.cpp semantics on the file tensors agree with HF
    ref64 = np_forward(fcfg, fvals, tokens)
    d_np = float(np.max(np.abs(ref64 - logits)))
    assert d_np < 1e-4, (name, d_np)
    # ... and that check is sensitive to the conventions it claims to cover
    mutants = {"other rope style": np_forward(fcfg, fvals, tokens,
                                              rope_style="neox" if arch == "llama" else "normal")}
    if arch == "gemma3":
        mutants["no sliding window"] = np_forward(dict(fcfg, swa_layers=[False] * fcfg["n_layer"]), fvals, tokens)
        mutants["window one wider"] = np_forward(dict(fcfg, sliding_window=fcfg["sliding_window"] + 1), fvals, tokens)
        mutants["global rope base on local layers"] = np_forward(
            dict(fcfg, rope_freq_base_swa=fcfg["rope_freq_base"]), fvals, tokens)
        mutants["norms without the +1"] = np_forward(
            fcfg, {k: (x - 1 if k.endswith("norm.weight") else x) for k, x in fvals.items()}, tokens)
    for what, m in mutants.items():
        d = float(np.max(np.abs(m - logits)))
        assert d > 1e-2, (name, what, d)

    logits_path = os.path.join(out_dir, name + ".logits.f32")
    logits.tofile(logits_path)

    s = np.sort(logits, axis=1)
    doc = {
        "name": name, "arch": arch, "type": wtype, "gguf": name + ".gguf",
        "tokens": tokens, "n_tokens": N_TOKENS, "n_vocab": N_VOCAB,
        "logits": name + ".logits.f32",
        "logits_layout": "float32 little-endian, row-major [n_tokens][n_vocab]; row i = logits after token i",
        "greedy_prompt": greedy_prompt, "greedy_tokens": greedy,
        "greedy_margins": margins,
        "logit_margins": [float(x) for x in (s[:, -1] - s[:, -2])],
        "tensor_types": dict(sorted(ftypes.items())),
        "config": cfg,
        "checks": {"file_rerun_max_abs_diff": d_file, "numpy_llamacpp_semantics_max_abs_diff": d_np},
    }
    with open(os.path.join(out_dir, name + ".json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    size = os.path.getsize(gguf_path)
    assert size < 1.5e6, (name, size)
    print(f"{name:14s} {wtype:5s} gguf {size / 1e3:7.1f} kB  logits std {logits.std():.3f} "
          f"min margin {min(margins):.4f}  file-rerun {d_file:.1e}  numpy {d_np:.1e}")
    return doc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "golden"))
    ap.add_argument("--only", nargs="*", help="fixture names (default: all)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(False)

    # convention self-tests
    x = np.arange(32 * 3, dtype=np.float32).reshape(32, 3)
    assert np.array_equal(unpermute(permute(x, 2), 2), x)
    assert len(set(bytes_to_unicode())) == 256

    for name, arch, wtype, sizes in FIXTURES:
        if args.only and name not in args.only:
            continue
        make_fixture(args.out, name, arch, wtype, sizes)

    index = {"fixtures": [f[0] for f in FIXTURES],
             "generator": "tools/make_golden.py", "format": "docs/GOLDEN.md"}
    with open(os.path.join(args.out, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(args.out, p)) for p in os.listdir(args.out))
    print(f"total {total / 1e6:.2f} MB")
    assert total < 10e6
    return 0


if __name__ == "__main__":
    sys.exit(main())

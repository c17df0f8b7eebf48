#!/usr/bin/env python3
"""Converts an OpenAI or Hugging Face Whisper checkpoint into one GGUF file for omnirt.

Inputs:
  * OpenAI (openai-whisper's `load_model` format): a .pt holding {"dims": {n_mels, n_audio_ctx,
    n_audio_state, n_audio_head, n_audio_layer, n_vocab, n_text_ctx, n_text_state, n_text_head,
    n_text_layer}, "model_state_dict": {...}}. It carries no vocabulary: give --vocab-from.
  * Hugging Face: a directory with config.json and model.safetensors (or pytorch_model.bin) of a
    WhisperForConditionalGeneration (or WhisperModel), plus its tokenizer files (tokenizer.json,
    or vocab.json with added_tokens.json / tokenizer_config.json) and generation_config.json.

--vocab-from takes the vocabulary (and the suppress lists) from another source: an omnirt
Whisper GGUF, a CTranslate2 model directory or its vocabulary.txt, a Hugging Face directory /
tokenizer.json, or openai-whisper's assets/gpt2.tiktoken / multilingual.tiktoken (no suppress
list: none is written, with a warning). safetensors are read with the standard library; .pt and .bin need torch (loaded
with weights_only=True: no code in the pickle runs).

The output is the file tools/convert_whisper_ct2.py writes (same writer, keys and tensor names,
docs/WHISPER.md FORMAT): OpenAI's tensor names, every float tensor in --type (f16 by default, as
the CTranslate2 tiny.en file; f32 keeps f32 weights exact). Hugging Face names are mapped to
OpenAI's; its untied output projection (proj_out) must equal the token embedding. Anything that
cannot be converted is refused with a message naming the tensor, key or value.

    python3 tools/convert_whisper.py CHECKPOINT OUT.gguf [--type f16|f32] [--name NAME]
                                     [--vocab-from PATH]
"""
import argparse
import json
import os
import re
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_whisper_ct2 import GgufOut  # noqa: E402  (the shared GGUF v3 writer)


class ConvertError(Exception):
    pass


# ---- tensors: (dims, dtype, bytes) with dtype in f32 / f16 / bf16, little-endian ---------------
ELEM_SIZE = {"f32": 4, "f16": 2, "bf16": 2}


def to_f32_bytes(dtype, data):
    if dtype == "f32":
        return data
    if dtype == "bf16":  # the upper half of an f32
        out = bytearray(len(data) * 2)
        out[2::4] = data[0::2]
        out[3::4] = data[1::2]
        return bytes(out)
    try:
        import numpy as np
        return np.frombuffer(data, dtype="<f2").astype("<f4").tobytes()
    except ImportError:
        n = len(data) // 2
        return struct.pack(f"<{n}f", *struct.unpack(f"<{n}e", data))


def f32_to_f16_bytes(name, data):
    """Round to nearest even (numpy and struct agree); values beyond f16's range are refused."""
    try:
        import numpy as np
        a = np.frombuffer(data, dtype="<f4")
        with np.errstate(over="ignore"):
            h = a.astype("<f2")
        bad = np.isfinite(a) & ~np.isfinite(h)
        if bad.any():
            raise ConvertError(f"{name}: value {float(a[bad][0])} does not fit in f16 (use --type f32)")
        return h.tobytes()
    except ImportError:
        out = []
        step = 1 << 16
        for i in range(0, len(data) // 4, step):
            chunk = data[i * 4:(i + step) * 4]
            vals = struct.unpack(f"<{len(chunk) // 4}f", chunk)
            try:
                out.append(struct.pack(f"<{len(vals)}e", *vals))
            except OverflowError:
                raise ConvertError(f"{name}: a value does not fit in f16 (use --type f32)")
        return b"".join(out)


def convert_data(name, dtype, data, out_type):
    if dtype == out_type:
        return data
    f32 = to_f32_bytes(dtype, data)
    return f32 if out_type == "f32" else f32_to_f16_bytes(name, f32)


# ---- readers -----------------------------------------------------------------------------
SAFETENSORS_DTYPES = {"F32": "f32", "F16": "f16", "BF16": "bf16"}


def read_safetensors(path):
    """u64 header length, JSON header {name: {dtype, shape, data_offsets}}, then the data."""
    with open(path, "rb") as f:
        b = f.read()
    if len(b) < 8:
        raise ConvertError(f"{path}: {len(b)} bytes is too short for a safetensors file")
    n = struct.unpack_from("<Q", b, 0)[0]
    if n > len(b) - 8:
        raise ConvertError(f"{path}: header length {n} runs past the end of the file ({len(b)} bytes)")
    try:
        header = json.loads(b[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConvertError(f"{path}: the header is not JSON ({e})")
    if not isinstance(header, dict):
        raise ConvertError(f"{path}: the header is not a JSON object")
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = info["dtype"], list(info["shape"]), info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ConvertError(f"{path}: tensor {name} has a malformed header entry {info!r}")
        if dtype not in SAFETENSORS_DTYPES:
            raise ConvertError(f"{path}: tensor {name} has dtype {dtype} (F32, F16 and BF16 are supported)")
        dt = SAFETENSORS_DTYPES[dtype]
        count = 1
        for d in shape:
            if not isinstance(d, int) or d < 0:
                raise ConvertError(f"{path}: tensor {name} has a bad shape {shape}")
            count *= d
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end
                and base + end <= len(b)):
            raise ConvertError(f"{path}: tensor {name} data [{begin}, {end}) runs past the end of the file")
        if end - begin != count * ELEM_SIZE[dt]:
            raise ConvertError(f"{path}: tensor {name} has {end - begin} bytes, its shape {shape} "
                               f"needs {count * ELEM_SIZE[dt]}")
        out[name] = (shape, dt, b[base + begin:base + end])
    return out


def torch_load(path):
    try:
        import torch
    except ImportError:
        raise ConvertError(f"{path}: reading a PyTorch pickle needs torch (pip install torch), "
                           "or give a directory with model.safetensors")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a bad pickle
        raise ConvertError(f"{path}: torch.load (weights_only) failed: {' '.join(str(e).split())[:300]}")


def torch_tensors(path, state):
    import torch
    types = {torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16"}
    out = {}
    for name, t in state.items():
        if not isinstance(t, torch.Tensor):
            raise ConvertError(f"{path}: state dict entry {name} is a {type(t).__name__}, not a tensor")
        if t.dtype not in types:
            raise ConvertError(f"{path}: tensor {name} has dtype {t.dtype} (float32, float16 and "
                               "bfloat16 are supported)")
        t = t.detach().contiguous()
        raw = t.view(torch.int16) if t.dtype == torch.bfloat16 else t
        out[name] = (list(t.shape), types[t.dtype], raw.numpy().tobytes())
    return out


# ---- the model: hyperparameters and the tensors omnirt expects, in the file's order -----------
HPARAMS = ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer", "n_vocab",
           "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer")


def check_hparams(hp, source):
    for k in HPARAMS:
        v = hp.get(k)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ConvertError(f"{source}: {k} = {v!r} is not a positive integer")
    if hp["n_audio_state"] != hp["n_text_state"]:
        raise ConvertError(f"{source}: encoder width {hp['n_audio_state']} and decoder width "
                           f"{hp['n_text_state']} differ (omnirt's Whisper needs them equal)")
    for side in ("audio", "text"):
        if hp[f"n_{side}_state"] % hp[f"n_{side}_head"]:
            raise ConvertError(f"{source}: n_{side}_state {hp[f'n_{side}_state']} is not a multiple of "
                               f"n_{side}_head {hp[f'n_{side}_head']}")


def expected_tensors(hp):
    """[(name, dims)] in OpenAI's names and PyTorch order; key biases are optional (see convert)."""
    d, m = hp["n_audio_state"], hp["n_mels"]
    out = [("encoder.conv1.weight", [d, m, 3]), ("encoder.conv1.bias", [d]),
           ("encoder.conv2.weight", [d, d, 3]), ("encoder.conv2.bias", [d]),
           ("encoder.positional_embedding", [hp["n_audio_ctx"], d])]

    def norm(name):
        return [(name + ".weight", [d]), (name + ".bias", [d])]

    def attn(name):
        out = []
        for p in ("query", "key", "value", "out"):
            out.append((f"{name}.{p}.weight", [d, d]))
            out.append((f"{name}.{p}.bias", [d]))
        return out

    def mlp(name):
        return [(name + ".mlp.0.weight", [4 * d, d]), (name + ".mlp.0.bias", [4 * d]),
                (name + ".mlp.2.weight", [d, 4 * d]), (name + ".mlp.2.bias", [d])]

    for i in range(hp["n_audio_layer"]):
        b = f"encoder.blocks.{i}"
        out += norm(b + ".attn_ln") + attn(b + ".attn") + norm(b + ".mlp_ln") + mlp(b)
    out += norm("encoder.ln_post")
    out += [("decoder.token_embedding.weight", [hp["n_vocab"], d]),
            ("decoder.positional_embedding", [hp["n_text_ctx"], d])]
    for i in range(hp["n_text_layer"]):
        b = f"decoder.blocks.{i}"
        out += (norm(b + ".attn_ln") + attn(b + ".attn") + norm(b + ".cross_attn_ln")
                + attn(b + ".cross_attn") + norm(b + ".mlp_ln") + mlp(b))
    out += norm("decoder.ln")
    return out


# ---- Hugging Face --------------------------------------------------------------------------
HF_LAYER_PARTS = {
    "self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key",
    "self_attn.v_proj": "attn.value", "self_attn.out_proj": "attn.out",
    "self_attn_layer_norm": "attn_ln",
    "encoder_attn.q_proj": "cross_attn.query", "encoder_attn.k_proj": "cross_attn.key",
    "encoder_attn.v_proj": "cross_attn.value", "encoder_attn.out_proj": "cross_attn.out",
    "encoder_attn_layer_norm": "cross_attn_ln",
    "fc1": "mlp.0", "fc2": "mlp.2", "final_layer_norm": "mlp_ln",
}
HF_FIXED = {
    "encoder.embed_positions.weight": "encoder.positional_embedding",
    "decoder.embed_positions.weight": "decoder.positional_embedding",
    "decoder.embed_tokens.weight": "decoder.token_embedding.weight",
    "encoder.layer_norm.weight": "encoder.ln_post.weight",
    "encoder.layer_norm.bias": "encoder.ln_post.bias",
    "decoder.layer_norm.weight": "decoder.ln.weight",
    "decoder.layer_norm.bias": "decoder.ln.bias",
}
HF_LAYER_RE = re.compile(r"^(encoder|decoder)\.layers\.(\d+)\.(.+)\.(weight|bias)$")


def hf_name(name):
    """A WhisperForConditionalGeneration / WhisperModel name -> OpenAI's, or None."""
    if name.startswith("model."):
        name = name[len("model."):]
    if name in HF_FIXED:
        return HF_FIXED[name]
    if re.match(r"^encoder\.conv[12]\.(weight|bias)$", name):
        return name
    m = HF_LAYER_RE.match(name)
    if m and m.group(3) in HF_LAYER_PARTS:
        return f"{m.group(1)}.blocks.{m.group(2)}.{HF_LAYER_PARTS[m.group(3)]}.{m.group(4)}"
    return None


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ConvertError(f"{path}: not valid JSON ({e})")


def hf_hparams(config, path):
    if config.get("model_type") != "whisper":
        raise ConvertError(f"{path}: model_type is {config.get('model_type')!r}, not 'whisper'")
    keys = {"n_mels": "num_mel_bins", "n_audio_ctx": "max_source_positions", "n_audio_state": "d_model",
            "n_audio_head": "encoder_attention_heads", "n_audio_layer": "encoder_layers",
            "n_vocab": "vocab_size", "n_text_ctx": "max_target_positions", "n_text_state": "d_model",
            "n_text_head": "decoder_attention_heads", "n_text_layer": "decoder_layers"}
    for ours, theirs in keys.items():
        if theirs not in config:
            raise ConvertError(f"{path}: has no {theirs}")
    hp = {ours: config[theirs] for ours, theirs in keys.items()}
    check_hparams(hp, path)
    d = hp["n_audio_state"]
    for key in ("encoder_ffn_dim", "decoder_ffn_dim"):
        if config.get(key, 4 * d) != 4 * d:
            raise ConvertError(f"{path}: {key} = {config[key]} (omnirt's Whisper needs 4 x d_model = {4 * d})")
    if config.get("activation_function", "gelu") != "gelu":
        raise ConvertError(f"{path}: activation_function {config['activation_function']!r} "
                           "(omnirt's Whisper computes erf GELU, 'gelu')")
    if config.get("scale_embedding", False):
        raise ConvertError(f"{path}: scale_embedding is true (Whisper's embeddings are not scaled)")
    return hp


def hf_weights(model_dir):
    st = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(st):
        return read_safetensors(st)
    bin_path = os.path.join(model_dir, "pytorch_model.bin")
    if os.path.exists(bin_path):
        state = torch_load(bin_path)
        if not isinstance(state, dict):
            raise ConvertError(f"{bin_path}: holds a {type(state).__name__}, not a state dict")
        return torch_tensors(bin_path, state)
    if os.path.exists(st + ".index.json") or os.path.exists(bin_path + ".index.json"):
        raise ConvertError(f"{model_dir}: sharded checkpoints are not supported (merge the shards "
                           "into one model.safetensors)")
    raise ConvertError(f"{model_dir}: has neither model.safetensors nor pytorch_model.bin")


def hf_tensors(raw, source):
    out = {}
    proj_out = None
    for name, t in raw.items():
        if name in ("proj_out.weight", "model.proj_out.weight"):
            proj_out = (name, t)
            continue
        ours = hf_name(name)
        if ours is None:
            raise ConvertError(f"{source}: unknown tensor {name} (not part of a Whisper checkpoint)")
        if ours in out:
            raise ConvertError(f"{source}: tensor {name} maps to {ours}, which is already there")
        out[ours] = t
    emb = out.get("decoder.token_embedding.weight")
    if proj_out is not None and emb is not None:
        name, (dims, dtype, data) = proj_out
        if dims != emb[0] or to_f32_bytes(dtype, data) != to_f32_bytes(emb[1], emb[2]):
            raise ConvertError(f"{source}: {name} differs from the token embedding (an untied output "
                               "projection; omnirt's Whisper computes logits with the token embedding)")
    return out


# ---- vocabularies ------------------------------------------------------------------------
class Vocab:
    def __init__(self, tokens, source):
        self.tokens = tokens
        self.source = source
        self.suppress = None        # lists of ids, or None when the source has none
        self.suppress_begin = None
        self.lang_ids = None
        self.alignment_heads = None


def vocab_from_ids(id_to_token, source):
    """Dense list from {id: token}; ids missing at the end after <|notimestamps|> are
    Whisper's timestamp tokens <|0.00|> .. (20 ms steps), which older tokenizer files omit."""
    if not id_to_token:
        raise ConvertError(f"{source}: the vocabulary is empty")
    n = max(id_to_token) + 1
    tokens = [id_to_token.get(i) for i in range(n)]
    missing = [i for i, t in enumerate(tokens) if t is None]
    if missing:
        raise ConvertError(f"{source}: the vocabulary has no token with id {missing[0]}")
    return tokens


def fill_timestamps(tokens, n_vocab, source):
    if len(tokens) > n_vocab:
        raise ConvertError(f"{source}: the vocabulary has {len(tokens)} tokens, the model {n_vocab}")
    if len(tokens) < n_vocab:
        if tokens[-1] != "<|notimestamps|>":
            raise ConvertError(f"{source}: the vocabulary has {len(tokens)} tokens, the model {n_vocab} "
                               f"(and its last token {tokens[-1]!r} is not <|notimestamps|>)")
        tokens = tokens + [f"<|{i * 0.02:.2f}|>" for i in range(n_vocab - len(tokens))]
    return tokens


def hf_vocab(model_dir):
    tok = os.path.join(model_dir, "tokenizer.json")
    ids = {}
    if os.path.exists(tok):
        t = load_json(tok)
        model = t.get("model") if isinstance(t, dict) else None
        if not isinstance(model, dict) or not isinstance(model.get("vocab"), dict):
            raise ConvertError(f"{tok}: has no model.vocab")
        ids.update({int(i): s for s, i in model["vocab"].items()})
        ids.update({int(a["id"]): a["content"] for a in t.get("added_tokens", [])})
    else:
        vj = os.path.join(model_dir, "vocab.json")
        if not os.path.exists(vj):
            raise ConvertError(f"{model_dir}: has neither tokenizer.json nor vocab.json "
                               "(or give --vocab-from)")
        ids.update({int(i): s for s, i in load_json(vj).items()})
        at = os.path.join(model_dir, "added_tokens.json")
        if os.path.exists(at):
            ids.update({int(i): s for s, i in load_json(at).items()})
        tc = os.path.join(model_dir, "tokenizer_config.json")
        if os.path.exists(tc):
            for i, a in load_json(tc).get("added_tokens_decoder", {}).items():
                ids[int(i)] = a["content"]
    v = Vocab(vocab_from_ids(ids, model_dir), model_dir)
    for name in ("generation_config.json", "config.json"):
        path = os.path.join(model_dir, name)
        if not os.path.exists(path):
            continue
        c = load_json(path)
        if v.suppress is None and "suppress_tokens" in c:
            v.suppress = list(c["suppress_tokens"] or [])
        if v.suppress_begin is None and "begin_suppress_tokens" in c:
            v.suppress_begin = list(c["begin_suppress_tokens"] or [])
        if v.lang_ids is None and isinstance(c.get("lang_to_id"), dict):
            v.lang_ids = sorted(c["lang_to_id"].values())
        if v.alignment_heads is None and c.get("alignment_heads"):
            v.alignment_heads = [int(x) for pair in c["alignment_heads"] for x in pair]
    return v


def ct2_vocab(path):
    """A CTranslate2 model directory or its vocabulary.txt (config.json beside it: suppress ids)."""
    model_dir = path if os.path.isdir(path) else os.path.dirname(path)
    txt = os.path.join(path, "vocabulary.txt") if os.path.isdir(path) else path
    with open(txt, encoding="utf-8") as f:
        tokens = f.read().split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    v = Vocab(tokens, txt)
    cfg = os.path.join(model_dir, "config.json")
    if os.path.exists(cfg):
        c = load_json(cfg)
        v.suppress = c.get("suppress_ids")
        v.suppress_begin = c.get("suppress_ids_begin")
        v.lang_ids = c.get("lang_ids")
        if c.get("alignment_heads"):
            v.alignment_heads = [x for pair in c["alignment_heads"] for x in pair]
    return v


def gguf_vocab(path):
    """tokenizer.ggml.tokens and the whisper.* id lists of an omnirt Whisper GGUF (minimal reader:
    the key/value section only)."""
    with open(path, "rb") as f:
        b = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(b):
            raise ConvertError(f"{path}: truncated at byte {pos}")
        v = struct.unpack_from(fmt, b, pos)
        pos += size
        return v if len(v) > 1 else v[0]

    def string():
        nonlocal pos
        n = take("<Q")
        if n > len(b) - pos:
            raise ConvertError(f"{path}: string of {n} bytes at byte {pos} runs past the end")
        s = b[pos:pos + n].decode("utf-8", errors="replace")
        pos += n
        return s

    scalars = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<B", 10: "<Q",
               11: "<q", 12: "<d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("<I"), take("<Q")
            if et != 8 and (et not in scalars or n * struct.calcsize(scalars[et]) > len(b) - pos):
                raise ConvertError(f"{path}: bad array (type {et}, {n} items) at byte {pos}")
            return [value(et) for _ in range(n)]
        if t not in scalars:
            raise ConvertError(f"{path}: unknown value type {t} at byte {pos}")
        return take(scalars[t])

    if b[:4] != b"GGUF":
        raise ConvertError(f"{path}: not a GGUF file")
    pos = 4
    version, _, n_kv = take("<IQQ")
    if version != 3:
        raise ConvertError(f"{path}: GGUF version {version} (3 is supported)")
    kv = {}
    for _ in range(n_kv):
        key = string()
        kv[key] = value(take("<I"))
    if "tokenizer.ggml.tokens" not in kv:
        raise ConvertError(f"{path}: has no tokenizer.ggml.tokens")
    v = Vocab(list(kv["tokenizer.ggml.tokens"]), path)
    v.suppress = kv.get("whisper.suppress_tokens")
    v.suppress_begin = kv.get("whisper.suppress_tokens_begin")
    v.lang_ids = kv.get("whisper.language_tokens")
    v.alignment_heads = kv.get("whisper.alignment_heads")
    return v


# openai-whisper's language codes in token order (whisper/tokenizer.py LANGUAGES): a model with
# n_vocab tokens has the first n_vocab - 51765 - multilingual of them.
OPENAI_LANGUAGES = (
    "en zh de es ru ko fr ja pt tr pl ca nl ar sv it id hi fi vi he uk el ms cs ro da hu ta no th ur "
    "hr bg lt la mi ml cy sk te fa lv bn sr az sl kn et mk br eu is hy ne mn bs kk sq sw gl mr pa si "
    "km sn yo so af oc ka be tg sd gu am yi lo uz fo ht ps tk nn mt sa lb my bo tl mg as tt haw ln "
    "ha ba jw su yue").split()


def gpt2_byte_symbols():
    """GPT-2's byte -> printable character map (the symbols vocabulary.txt and vocab.json use)."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
          + list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tiktoken_vocab(path, n_vocab):
    """openai-whisper's assets/{gpt2,multilingual}.tiktoken ("base64(bytes) rank" lines) plus the
    special tokens its tokenizer appends (whisper/tokenizer.py get_encoding)."""
    import base64
    import binascii
    symbols = gpt2_byte_symbols()
    ranks = {}
    with open(path, encoding="ascii") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                token, rank = base64.b64decode(parts[0]), int(parts[1])  # as tiktoken reads it
            except (IndexError, ValueError, binascii.Error):
                raise ConvertError(f"{path}:{line_no}: not a 'base64 rank' line")
            ranks[rank] = "".join(symbols[b] for b in token)
    tokens = vocab_from_ids(ranks, path)
    multilingual = n_vocab >= 51865
    n_lang = n_vocab - 51765 - int(multilingual)
    if not 0 < n_lang <= len(OPENAI_LANGUAGES):
        raise ConvertError(f"{path}: a model with {n_vocab} tokens has {n_lang} languages "
                           f"(openai-whisper knows {len(OPENAI_LANGUAGES)})")
    tokens += (["<|endoftext|>", "<|startoftranscript|>"] + [f"<|{c}|>" for c in OPENAI_LANGUAGES[:n_lang]]
               + ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
                  "<|notimestamps|>"] + [f"<|{i * 0.02:.2f}|>" for i in range(1501)])
    if len(tokens) != n_vocab:
        raise ConvertError(f"{path}: {len(ranks)} ranks and the special tokens make {len(tokens)} tokens, "
                           f"the model has {n_vocab} (gpt2.tiktoken is for English-only models, "
                           "multilingual.tiktoken for the others)")
    return Vocab(tokens, path)


def load_vocab(path, n_vocab):
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "vocabulary.txt")):
            return ct2_vocab(path)
        return hf_vocab(path)
    if not os.path.exists(path):
        raise ConvertError(f"--vocab-from {path}: no such file or directory")
    if path.endswith(".gguf"):
        return gguf_vocab(path)
    if path.endswith(".tiktoken"):
        return tiktoken_vocab(path, n_vocab)
    if os.path.basename(path) == "tokenizer.json":
        return hf_vocab(os.path.dirname(path) or ".")
    if path.endswith(".txt"):
        return ct2_vocab(path)
    raise ConvertError(f"--vocab-from {path}: expected a .gguf, vocabulary.txt, tokenizer.json, "
                       "openai-whisper's .tiktoken or a model directory")


# ---- conversion --------------------------------------------------------------------------
def all_zero(dtype, data):
    """Every value +0 or -0: the f32 bytes are zero once each sign bit is cleared."""
    b = bytearray(to_f32_bytes(dtype, data))
    b[3::4] = bytes(x & 0x7F for x in b[3::4])
    return not any(b)


def read_checkpoint(path):
    """-> (hparams, {OpenAI name: tensor}, default vocabulary or None, source description)."""
    if os.path.isdir(path):
        cfg = os.path.join(path, "config.json")
        if not os.path.exists(cfg):
            raise ConvertError(f"{path}: has no config.json (a Hugging Face Whisper directory needs one)")
        config = load_json(cfg)
        hp = hf_hparams(config, cfg)
        tensors = hf_tensors(hf_weights(path), path)
        arch = (config.get("architectures") or ["WhisperForConditionalGeneration"])[0]
        return hp, tensors, path, f"Hugging Face {arch}"
    if not os.path.exists(path):
        raise ConvertError(f"{path}: no such file or directory")
    ckpt = torch_load(path)
    if not isinstance(ckpt, dict) or "dims" not in ckpt or "model_state_dict" not in ckpt:
        keys = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ConvertError(f"{path}: not an OpenAI Whisper checkpoint (expected the keys dims and "
                           f"model_state_dict, found {keys})")
    dims = ckpt["dims"]
    if not isinstance(dims, dict):
        raise ConvertError(f"{path}: dims is a {type(dims).__name__}, not a dict")
    hp = {k: dims.get(k) for k in HPARAMS}
    check_hparams(hp, path + " dims")
    return hp, torch_tensors(path, ckpt["model_state_dict"]), None, "OpenAI checkpoint"


def convert(checkpoint, out_path, out_type="f16", name=None, vocab_from=None):
    hp, tensors, default_vocab, source = read_checkpoint(checkpoint)
    if vocab_from is None and default_vocab is None:
        raise ConvertError(f"{checkpoint}: an OpenAI checkpoint carries no vocabulary; give --vocab-from "
                           "(an omnirt Whisper GGUF, a CTranslate2 directory / vocabulary.txt, or a "
                           "Hugging Face tokenizer directory)")
    vocab = load_vocab(vocab_from, hp["n_vocab"]) if vocab_from else hf_vocab(default_vocab)
    tokens = fill_timestamps(vocab.tokens, hp["n_vocab"], vocab.source)

    expected = expected_tensors(hp)
    known = {n for n, _ in expected}
    for n in tensors:
        if n not in known:
            raise ConvertError(f"{checkpoint}: unknown tensor {n} (for {hp['n_audio_layer']} encoder and "
                               f"{hp['n_text_layer']} decoder layers)")

    def token(text):
        try:
            return tokens.index(text)
        except ValueError:
            raise ConvertError(f"{vocab.source}: the vocabulary lacks the special token {text}")

    out = GgufOut()
    out.string("general.architecture", "whisper")
    base = os.path.basename(os.path.normpath(checkpoint))  # "whisper-tiny.en" stays whole
    out.string("general.name", name or (base if os.path.isdir(checkpoint) else os.path.splitext(base)[0]))
    out.string("whisper.source", source)
    for key in ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer", "n_text_ctx",
                "n_text_state", "n_text_head", "n_text_layer", "n_vocab"):
        out.u32("whisper." + key, hp[key])
    out.bool("whisper.multilingual", hp["n_vocab"] >= 51865)
    specials = {}
    for key, text in (("eot", "<|endoftext|>"), ("sot", "<|startoftranscript|>"),
                      ("translate", "<|translate|>"), ("transcribe", "<|transcribe|>"),
                      ("sot_prev", "<|startofprev|>"), ("sot_lm", "<|startoflm|>"),
                      ("no_timestamps", "<|notimestamps|>"), ("timestamp_begin", "<|0.00|>")):
        specials[key] = token(text)
        out.u32("whisper.token." + key, specials[key])
    out.u32("whisper.token.no_speech", token("<|nospeech|>" if "<|nospeech|>" in tokens else "<|nocaptions|>"))
    suppress_begin = vocab.suppress_begin
    if suppress_begin is None:  # openai-whisper's SuppressBlank: " " and eot at the first step
        suppress_begin = [token("\u0120"), specials["eot"]]
    suppress = vocab.suppress
    if suppress is None:
        print(f"convert_whisper: warning: {vocab.source} has no suppress_tokens list; none written "
              "(give --vocab-from a source that has one)", file=sys.stderr)
        suppress = []
    lang_ids = vocab.lang_ids
    if lang_ids is None:  # the tokens between <|startoftranscript|> and <|translate|>
        lang_ids = list(range(specials["sot"] + 1, specials["translate"]))
    for key, ids in (("suppress_tokens", suppress), ("suppress_tokens_begin", suppress_begin),
                     ("language_tokens", lang_ids)):
        for i in ids:
            if not isinstance(i, int) or not 0 <= i < hp["n_vocab"]:
                raise ConvertError(f"{vocab.source}: {key} holds {i!r}, not a token id below {hp['n_vocab']}")
        out.i32_array("whisper." + key, list(ids))
    out.i32_array("whisper.alignment_heads", list(vocab.alignment_heads or []))
    out.string("tokenizer.ggml.model", "gpt2")
    out.string_array("tokenizer.ggml.tokens", tokens)

    for tname, dims in expected:
        if tname not in tensors:
            if tname.endswith(".key.bias"):
                continue  # Whisper's key projections have no bias
            raise ConvertError(f"{checkpoint}: missing tensor {tname}")
        tdims, dtype, data = tensors[tname]
        if tdims != dims:
            raise ConvertError(f"{checkpoint}: tensor {tname} has shape {tdims}, expected {dims}")
        if tname.endswith(".key.bias") and all_zero(dtype, data):
            continue  # as convert_whisper_ct2.py: an all-zero key bias is dropped
        out.tensor(tname, dims, out_type, convert_data(tname, dtype, data, out_type))
    out.write(out_path)
    return len(out.tensors)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="an OpenAI .pt, or a Hugging Face model directory")
    ap.add_argument("out")
    ap.add_argument("--type", choices=("f16", "f32"), default="f16", help="tensor type (default f16)")
    ap.add_argument("--name", help="general.name (default: the checkpoint's file or directory name)")
    ap.add_argument("--vocab-from", help="vocabulary source: a Whisper GGUF, a CTranslate2 directory or "
                                         "vocabulary.txt, a Hugging Face directory or tokenizer.json, "
                                         "openai-whisper's gpt2.tiktoken / multilingual.tiktoken")
    args = ap.parse_args()
    try:
        n = convert(args.checkpoint, args.out, args.type, args.name, args.vocab_from)
    except (ConvertError, OSError, UnicodeDecodeError) as e:
        print(f"convert_whisper: error: {e}", file=sys.stderr)
        return 1
    print(f"convert_whisper: wrote {args.out} ({n} tensors, {args.type})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

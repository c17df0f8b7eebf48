#!/usr/bin/env python3
"""Writes small GGUF files that are valid containers but wrong *models*, one defect each, for the
model loader's error tests (tests/model_error_test.cpp). Written with the PyPI gguf package.

Each file is a 1-layer llama with n_embd 32 (random f32 weights) plus one defect; expected.json maps
file -> {"code": StatusCode name, "message": substring the error must contain}.
Run: python3 tools/make_model_error_fixtures.py  (writes tests/data/model_bad/)
"""
import json
import os

import numpy as np
import gguf

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "model_bad")
N_EMBD, N_HEAD, N_KV, N_FF, N_VOCAB = 32, 4, 2, 64, 260
HEAD_DIM = N_EMBD // N_HEAD


def byte_tokens():
    # GPT-2 byte-level alphabet, in bytes_to_unicode order.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def write(name, arch="llama", mutate=None, skip=(), extra_kv=None, drop_kv=()):
    rng = np.random.default_rng(0)
    path = os.path.join(OUT, name + ".gguf")
    w = gguf.GGUFWriter(path, arch)
    kv = {
        "context_length": 64, "embedding_length": N_EMBD, "block_count": 1,
        "feed_forward_length": N_FF, "attention.head_count": N_HEAD, "attention.head_count_kv": N_KV,
    }
    for k, v in kv.items():
        if k in drop_kv:
            continue
        w.add_uint32(f"{arch}.{k}", v)
    w.add_float32(f"{arch}.attention.layer_norm_rms_epsilon", 1e-5)
    for k, v in (extra_kv or {}).items():
        w.add_uint32(f"{arch}.{k}", v)
    toks = byte_tokens() + ["<|bos|>", "<|eos|>"] + [f"<unused_{i}>" for i in range(N_VOCAB - 258)]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(toks)
    w.add_token_types([1] * 256 + [3, 3] + [5] * (N_VOCAB - 258))
    w.add_token_merges([])
    w.add_bos_token_id(256)
    w.add_eos_token_id(257)
    shapes = {
        "token_embd.weight": (N_VOCAB, N_EMBD), "output_norm.weight": (N_EMBD,),
        "blk.0.attn_norm.weight": (N_EMBD,), "blk.0.attn_q.weight": (N_HEAD * HEAD_DIM, N_EMBD),
        "blk.0.attn_k.weight": (N_KV * HEAD_DIM, N_EMBD), "blk.0.attn_v.weight": (N_KV * HEAD_DIM, N_EMBD),
        "blk.0.attn_output.weight": (N_EMBD, N_HEAD * HEAD_DIM), "blk.0.ffn_norm.weight": (N_EMBD,),
        "blk.0.ffn_gate.weight": (N_FF, N_EMBD), "blk.0.ffn_up.weight": (N_FF, N_EMBD),
        "blk.0.ffn_down.weight": (N_EMBD, N_FF),
    }
    for tname, shape in shapes.items():
        if tname in skip:
            continue
        data = rng.standard_normal(shape).astype(np.float32) * 0.05
        raw_dtype = None
        if mutate and tname in mutate:
            data, raw_dtype = mutate[tname](data)
        if raw_dtype is not None:
            w.add_tensor(tname, data, raw_dtype=raw_dtype)
        else:
            w.add_tensor(tname, data)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    os.makedirs(OUT, exist_ok=True)
    expected = {}

    write("valid_llama")
    expected["valid_llama"] = {"code": "ok", "message": ""}

    write("shape_mismatch", mutate={"blk.0.attn_q.weight": lambda d: (d[:, : N_EMBD - 8].copy(), None)})
    expected["shape_mismatch"] = {"code": "kCorruptFile", "message": "blk.0.attn_q.weight"}

    write("missing_tensor", skip=("blk.0.ffn_up.weight",))
    expected["missing_tensor"] = {"code": "kNotFound", "message": "blk.0.ffn_up.weight"}

    write("unknown_arch", arch="mamba9")
    expected["unknown_arch"] = {"code": "kUnsupported", "message": "mamba9"}

    def to_q4_1(d):
        q = gguf.quants.quantize(d, gguf.GGMLQuantizationType.Q4_1)
        return q, gguf.GGMLQuantizationType.Q4_1
    write("unsupported_type", mutate={"blk.0.attn_v.weight": to_q4_1})
    expected["unsupported_type"] = {"code": "kUnsupported", "message": "q4_1"}

    write("missing_hparam", drop_kv=("block_count",))
    expected["missing_hparam"] = {"code": "kNotFound", "message": "llama.block_count"}

    write("bad_head_count", extra_kv={"attention.head_count_kv": 3})
    expected["bad_head_count"] = {"code": "kCorruptFile", "message": "head_count"}

    write("absurd_block_count", extra_kv={"block_count": 1 << 30})
    expected["absurd_block_count"] = {"code": "kCorruptFile", "message": "block_count"}

    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""llama.cpp (through the llama-cpp-python package) against `omnirt bench` on the same GGUF file.

Run: python3 bench/llama_cpp_peer.py --model models/gemma-3-270m-q4_k_m.gguf --threads 2 \
        --omnirt build/bin/omnirt [--reps 5]

What is timed, for llama.cpp (n_ctx 1024, n_batch 512, n_ubatch 512, the same thread count for
decode and batch work, KV f16, flash attention off: the library defaults; weights mmapped, except
that llama.cpp repacks some Q4_K tensors into its interleaved CPU layout at load):
  prefill: one llama_decode of the 512-token prompt in a fresh sequence (cache cleared first);
           wall time around llama_decode (+ llama_synchronize), tokens / seconds.
  decode:  after that prompt, 128 steps of llama_decode with one token each, the token being
           the argmax of the previous logits (greedy, as omnirt bench); wall time of the whole
           loop including the argmax over the vocabulary (numpy on the logits pointer), the same
           things that omnirt's decode figure includes.
Both use the same pseudo-random-prompt scheme (fixed seed, ids uniform over the vocabulary);
neither reads text. Every figure is the median [min-max] over --reps repetitions; then omnirt's
bench runs (--json, same file, same threads, same prompt/gen lengths, same reps) and the ratio
omnirt / llama.cpp is printed.
"""
import argparse
import ctypes
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def summary(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def run_llama(model, threads, n_prompt, n_gen, reps, flash_attn="default"):
    import llama_cpp as L

    L.llama_backend_init()
    mp = L.llama_model_default_params()
    mp.use_mmap = True
    m = L.llama_model_load_from_file(model.encode(), mp)
    if not m:
        sys.exit(f"llama.cpp cannot load {model}")
    cp = L.llama_context_default_params()
    cp.n_ctx = 1024
    cp.n_batch = 512
    cp.n_ubatch = 512
    cp.n_threads = threads
    cp.n_threads_batch = threads
    cp.no_perf = False
    if flash_attn != "default":  # llama.cpp >= 0.3.10: -1 auto, 0 off, 1 on
        cp.flash_attn_type = {"auto": -1, "off": 0, "on": 1}[flash_attn]
    ctx = L.llama_init_from_model(m, cp)
    vocab = L.llama_model_get_vocab(m)
    n_vocab = L.llama_vocab_n_tokens(vocab)

    rng = np.random.default_rng(1234)
    prompt = rng.integers(0, n_vocab, size=n_prompt, dtype=np.int32)

    batch = L.llama_batch_init(max(n_prompt, 1), 0, 1)

    def fill(tokens, pos0, last_logits_only=True):
        batch.n_tokens = len(tokens)
        for i, t in enumerate(tokens):
            batch.token[i] = int(t)
            batch.pos[i] = pos0 + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1 if (i == len(tokens) - 1 or not last_logits_only) else 0

    def clear():  # the cache-clearing call was renamed twice across llama.cpp versions
        if hasattr(L, "llama_memory_clear"):
            L.llama_memory_clear(L.llama_get_memory(ctx), True)
        elif hasattr(L, "llama_kv_self_clear"):
            L.llama_kv_self_clear(ctx)
        else:
            L.llama_kv_cache_clear(ctx)

    def argmax_last():
        p = L.llama_get_logits_ith(ctx, -1)
        a = np.ctypeslib.as_array(ctypes.cast(p, ctypes.POINTER(ctypes.c_float)), shape=(n_vocab,))
        return int(a.argmax())

    # Warm-up: page the weights in and let llama.cpp size its buffers.
    clear()
    fill(prompt[:8], 0)
    L.llama_decode(ctx, batch)
    L.llama_synchronize(ctx)

    prefill, decode = [], []
    dec_wall = dec_cpu = 0.0
    for _ in range(reps):
        clear()
        fill(prompt, 0)
        t0 = time.perf_counter()
        if L.llama_decode(ctx, batch) != 0:
            sys.exit("llama_decode failed on the prompt")
        L.llama_synchronize(ctx)
        t1 = time.perf_counter()
        prefill.append(n_prompt / (t1 - t0))
        pos = n_prompt
        t1, c1 = time.perf_counter(), cpu_seconds()
        for _ in range(n_gen):
            fill([argmax_last()], pos)
            if L.llama_decode(ctx, batch) != 0:
                sys.exit("llama_decode failed while decoding")
            pos += 1
        L.llama_synchronize(ctx)
        t2 = time.perf_counter()
        dec_wall += t2 - t1
        dec_cpu += cpu_seconds() - c1
        decode.append(n_gen / (t2 - t1))
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(m)
    # CPU time / (wall x threads) while decoding: well below 1 means other processes took CPUs
    # (llama.cpp's threads spin between graph nodes, as omnirt's do).
    return {"prefill_tok_s": summary(prefill), "decode_tok_s": summary(decode),
            "decode_cpu_share": dec_cpu / (dec_wall * threads),
            "version": getattr(L, "__version__", "?")}


def run_omnirt(exe, model, threads, n_prompt, n_gen, reps, int8=False):
    cmd = [exe, "bench", "--model", model, "--threads", str(threads), "--prompt-tokens", str(n_prompt),
           "--gen-tokens", str(n_gen), "--reps", str(reps), "--json"] + (["--int8"] if int8 else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out), " ".join(cmd)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--omnirt", default="build/bin/omnirt")
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--int8", action="store_true",
                    help="omnirt with int8 activations (as llama.cpp quantizes its activations to 8 bits)")
    ap.add_argument("--flash-attn", choices=("default", "auto", "on", "off"), default="default",
                    help="llama.cpp's flash attention (default: the library's default, auto in 0.3.36)")
    a = ap.parse_args()

    llama = run_llama(a.model, a.threads, a.prompt_tokens, a.gen_tokens, a.reps, a.flash_attn)
    omni, cmd = run_omnirt(a.omnirt, a.model, a.threads, a.prompt_tokens, a.gen_tokens, a.reps, a.int8)
    row = omni["results"][0]
    res = {"model": a.model, "threads": a.threads, "prompt_tokens": a.prompt_tokens,
           "gen_tokens": a.gen_tokens, "reps": a.reps, "llama_cpp": llama,
           "omnirt": {"prefill_tok_s": row["prefill_tok_s"], "decode_tok_s": row["decode_tok_s"],
                      "roofline_fraction": row.get("roofline_fraction"),
                      "decode_cpu_share": row.get("decode_cpu_share"), "command": cmd},
           "ratio": {k: row[k]["median"] / llama[k]["median"] for k in ("prefill_tok_s", "decode_tok_s")}}
    if a.json:
        print(json.dumps(res, indent=1))
        return
    print(f"{a.model}, {a.threads} threads, prompt {a.prompt_tokens}, decode {a.gen_tokens}, "
          f"{a.reps} reps (median [min-max]), llama.cpp flash attention: {a.flash_attn}")
    print(f"{'':10s} {'llama.cpp ' + llama['version']:>28s} {'omnirt' + (' --int8' if a.int8 else ''):>28s} "
          f"{'omnirt/llama':>13s}")
    for k, name in (("prefill_tok_s", "prefill"), ("decode_tok_s", "decode")):
        l, o = llama[k], row[k]
        print(f"{name + ' t/s':10s} {l['median']:10.1f} [{l['min']:6.1f}-{l['max']:6.1f}] "
              f"{o['median']:16.1f} [{o['min']:6.1f}-{o['max']:6.1f}] {res['ratio'][k]:12.2f}x")
    print(f"decode CPU share (1.0 = undisturbed): llama.cpp {llama['decode_cpu_share']:.2f}, "
          f"omnirt {row.get('decode_cpu_share', 0):.2f}")


if __name__ == "__main__":
    main()

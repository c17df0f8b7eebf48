#!/usr/bin/env python3
"""Convert a SNAC model (the `snac` package: config.json + pytorch_model.bin) to GGUF.

Writes the decoder half only (quantizer codebooks and out-projections, the decoder), with weight
norm folded into the weights, under `codec.` tensor names and `snac.*` keys (docs/CODEC.md).

    python3 tools/convert_snac.py MODEL_DIR out.gguf [--type f32|f16|bf16]

MODEL_DIR holds config.json and pytorch_model.bin (what SNAC.from_pretrained reads). Matrices
(the 1x1 convs and the transposed convs) take --type (bf16 rounds to nearest even); vectors, depthwise kernels and codebooks
stay f32. The library entry point `add_snac(writer, model, mat_type)` also serves
tools/make_snac_fixtures.py and omni model files that carry the codec as a component.
"""
import argparse
import json
import os
import sys

import numpy as np


def _f32(t):
    return t.detach().cpu().float().numpy().astype(np.float32)


def add_snac_keys(w, model):
    """snac.* hyperparameter keys from a snac.SNAC model."""
    w.add_uint32("snac.sampling_rate", int(model.sampling_rate))
    w.add_uint32("snac.hop_length", int(model.hop_length))
    w.add_uint32("snac.latent_dim", int(model.latent_dim))
    w.add_uint32("snac.decoder_dim", int(model.decoder_dim))
    w.add_array("snac.decoder_rates", [int(r) for r in model.decoder_rates])
    w.add_uint32("snac.codebook_size", int(model.codebook_size))
    w.add_uint32("snac.codebook_dim", int(model.codebook_dim))
    w.add_array("snac.vq_strides", [int(s) for s in model.vq_strides])
    w.add_bool("snac.depthwise", bool(_is_depthwise(model)))
    w.add_bool("snac.noise", bool(_has_noise(model)))
    w.add_uint32("snac.attn_window_size", int(model.attn_window_size or 0))


def _is_depthwise(model):
    return model.decoder.model[0].groups == model.latent_dim and model.decoder.model[0].groups > 1


def _has_noise(model):
    from snac.layers import NoiseBlock
    return any(isinstance(m, NoiseBlock) for m in model.decoder.modules())


def add_snac(w, model, mat_type="f32"):
    """Keys and codec.* tensors of a snac.SNAC model into a gguf.GGUFWriter."""
    import torch
    from snac.layers import DecoderBlock, NoiseBlock, ResidualUnit, Snake1d

    if model.attn_window_size:
        raise ValueError("SNAC with local attention (attn_window_size) is not supported")
    if not _is_depthwise(model):
        raise ValueError("only depthwise SNAC decoders are supported")
    add_snac_keys(w, model)
    def add_mat(name, a):
        a = np.ascontiguousarray(a, dtype=np.float32)
        if mat_type == "f16":
            w.add_tensor(name, a.astype(np.float16))
        elif mat_type == "bf16":  # round to nearest even, as gguf-py's BF16 quantizer does
            import gguf
            from gguf import quants
            w.add_tensor(name, quants.quantize(a, gguf.GGMLQuantizationType.BF16),
                         raw_dtype=gguf.GGMLQuantizationType.BF16)
        else:
            w.add_tensor(name, a)

    def vec(name, t):
        w.add_tensor(name, _f32(t).reshape(-1))

    with torch.no_grad():
        for l, q in enumerate(model.quantizer.quantizers):
            w.add_tensor(f"codec.vq.{l}.codebook", _f32(q.codebook.weight))
            w.add_tensor(f"codec.vq.{l}.out_proj.weight", _f32(q.out_proj.weight)[:, :, 0])
            vec(f"codec.vq.{l}.out_proj.bias", q.out_proj.bias)
        layers = list(model.decoder.model)
        w.add_tensor("codec.dec.in_dw.weight", _f32(layers[0].weight)[:, 0, :])  # [latent, 7]
        vec("codec.dec.in_dw.bias", layers[0].bias)
        add_mat("codec.dec.in_pw.weight", _f32(layers[1].weight)[:, :, 0])
        vec("codec.dec.in_pw.bias", layers[1].bias)
        blocks = [m for m in layers if isinstance(m, DecoderBlock)]
        for b, blk in enumerate(blocks):
            mods = list(blk.block)
            p = f"codec.dec.blk.{b}"
            vec(f"{p}.snake.alpha", mods[0].alpha)
            up = _f32(mods[1].weight)  # [in, out, k]
            add_mat(f"{p}.up.weight", up.transpose(2, 1, 0))  # [k, out, in]
            vec(f"{p}.up.bias", mods[1].bias)
            noise = [m for m in mods if isinstance(m, NoiseBlock)]
            if noise:
                add_mat(f"{p}.noise.weight", _f32(noise[0].linear.weight)[:, :, 0])
            for r, ru in enumerate(m for m in mods if isinstance(m, ResidualUnit)):
                s1, dw, s2, pw = list(ru.block)
                vec(f"{p}.res.{r}.snake1.alpha", s1.alpha)
                w.add_tensor(f"{p}.res.{r}.dw.weight", _f32(dw.weight)[:, 0, :])  # [C, 7]
                vec(f"{p}.res.{r}.dw.bias", dw.bias)
                vec(f"{p}.res.{r}.snake2.alpha", s2.alpha)
                add_mat(f"{p}.res.{r}.pw.weight", _f32(pw.weight)[:, :, 0])
                vec(f"{p}.res.{r}.pw.bias", pw.bias)
        snakes = [m for m in layers if isinstance(m, Snake1d)]
        vec("codec.dec.out_snake.alpha", snakes[-1].alpha)
        out = layers[-2]
        w.add_tensor("codec.dec.out.weight", _f32(out.weight))  # [1, C, 7]
        vec("codec.dec.out.bias", out.bias)


def write_snac_gguf(model, path, mat_type="f32", name="snac"):
    import gguf
    w = gguf.GGUFWriter(path, "snac")
    w.add_name(name)
    add_snac(w, model, mat_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("out")
    ap.add_argument("--type", choices=["f32", "f16", "bf16"], default="f32",
                    help="type of the 1x1 and transposed convs' matrices (bf16: the 2x CPU kernel on AVX512_BF16)")
    a = ap.parse_args()
    import torch
    from snac import SNAC
    with open(os.path.join(a.model_dir, "config.json")) as f:
        config = json.load(f)
    model = SNAC(**config)
    sd = torch.load(os.path.join(a.model_dir, "pytorch_model.bin"), map_location="cpu")
    model.load_state_dict(sd)
    model.eval()
    write_snac_gguf(model, a.out, a.type, os.path.basename(os.path.normpath(a.model_dir)))
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()

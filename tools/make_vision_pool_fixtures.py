#!/usr/bin/env python3
"""Dev-time reference fixtures for the pooling adapter (Gemma 3's projector) -> tests/data/vision/.

Run by hand (needs transformers and torch, which CI does not have); outputs are small and
committed. A tiny random SiglipVisionModel (64 x 64 pixels, patch 8: an 8 x 8 grid) with
transformers' Gemma3MultiModalProjector (mm_tokens_per_image = 16: 2 x 2 average pooling to
4 x 4 tokens, RMSNorm with (1 + w), projection 64 -> 48) is written as llama.cpp's mmproj GGUF
(clip.projector_type = "gemma3", clip.vision.projector.scale_factor, mm.soft_emb_norm.weight
stored as 1 + w as llama.cpp's converter does, mm.input_projection.weight [d_vision, d_text]);
outputs on a SigLIP-preprocessed crop of astro.png.rgb (made by make_vision_fixtures.py):

  pool_gemma3.gguf               the file
  pool_pixels_64.f32             [3][64][64] input
  pool_full_adapted.f32          [16, 48]  Gemma3MultiModalProjector(SiglipVisionModel(x))
  pool_dropped_adapted.f32       [15, 48]  patches dropped (see DROP): the tower runs on the kept
                                           rows (positions kept), each pooled token averages the
                                           kept patches of its 2 x 2 window, a window with none
                                           kept is dropped, then the projector's norm + matmul

And the merge adapter (Idefics3 / SmolVLM, llama.cpp projector "idefics3"): the same kind of
tower with transformers' Idefics3Connector (scale_factor 2: pixel shuffle 64 -> 256, 4 x 4
tokens, Linear 256 -> 48 without bias, mm.model.fc.weight):

  merge_idefics3.gguf            the file
  merge_full_adapted.f32         [16, 48]  Idefics3Connector(SiglipVisionModel(x))
  merge_dropped_adapted.f32      [13, 48]  DROP dropped: the tower on the kept rows; dropped rows
                                           set to NaN in the full grid, the connector's own
                                           pixel shuffle + projection, rows with NaN (windows
                                           missing a patch) removed

  python3 tools/make_vision_pool_fixtures.py
"""
import json
import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "vision")
# Grid indices of the 8 x 8 grid dropped: window (0, 0) entirely (patches 0, 1, 8, 9), one patch
# of window (1, 1) (18), two of window (3, 3) (54, 63).
DROP = [0, 1, 8, 9, 18, 54, 63]


def save_f32(name, array):
    a = np.ascontiguousarray(np.asarray(array), dtype="<f4")
    a.tofile(os.path.join(OUT, name))
    print(f"{name}: {a.shape} ({a.nbytes} bytes)")
    return list(a.shape)


def write_mmproj(path, vm, cfg, proj, scale, kind="gemma3"):
    import gguf

    w = gguf.GGUFWriter(path, "clip")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.has_text_encoder", False)
    w.add_string("clip.projector_type", kind)
    w.add_uint32("clip.vision.image_size", cfg.image_size)
    w.add_uint32("clip.vision.patch_size", cfg.patch_size)
    w.add_uint32("clip.vision.embedding_length", cfg.hidden_size)
    w.add_uint32("clip.vision.feed_forward_length", cfg.intermediate_size)
    w.add_uint32("clip.vision.block_count", cfg.num_hidden_layers)
    w.add_uint32("clip.vision.attention.head_count", cfg.num_attention_heads)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", cfg.layer_norm_eps)
    w.add_uint32("clip.vision.projection_dim", proj.mm_input_projection_weight.shape[1]
                 if kind == "gemma3" else proj.modality_projection.proj.weight.shape[0])
    w.add_uint32("clip.vision.projector.scale_factor", scale)
    w.add_bool("clip.use_gelu", True)
    w.add_array("clip.vision.image_mean", [0.5] * 3)
    w.add_array("clip.vision.image_std", [0.5] * 3)

    def t(name, x):
        w.add_tensor(name, np.ascontiguousarray(x.detach().double().numpy().astype(np.float32)))

    e = vm.embeddings
    t("v.patch_embd.weight", e.patch_embedding.weight)
    t("v.patch_embd.bias", e.patch_embedding.bias)
    t("v.position_embd.weight", e.position_embedding.weight)
    for i, L in enumerate(vm.encoder.layers):
        b = f"v.blk.{i}"
        for ours, mod in (("attn_q", L.self_attn.q_proj), ("attn_k", L.self_attn.k_proj),
                          ("attn_v", L.self_attn.v_proj), ("attn_out", L.self_attn.out_proj),
                          ("ffn_up", L.mlp.fc1), ("ffn_down", L.mlp.fc2),
                          ("ln1", L.layer_norm1), ("ln2", L.layer_norm2)):
            t(f"{b}.{ours}.weight", mod.weight)
            t(f"{b}.{ours}.bias", mod.bias)
    t("v.post_ln.weight", vm.post_layernorm.weight)
    t("v.post_ln.bias", vm.post_layernorm.bias)
    # llama.cpp's convert_hf_to_gguf (Gemma3VisionModel): soft_emb_norm stored as 1 + w; the
    # projection as torch holds it, [d_vision, d_text] (ggml ne = [d_text, d_vision]).
    if kind == "gemma3":
        t("mm.soft_emb_norm.weight", proj.mm_soft_emb_norm.weight + 1)
        t("mm.input_projection.weight", proj.mm_input_projection_weight)
    else:  # idefics3: the Linear as torch holds it, [out, d k^2]
        t("mm.model.fc.weight", proj.modality_projection.proj.weight)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{os.path.basename(path)}: {os.path.getsize(path)} bytes")


def main():
    import torch
    from transformers import Gemma3Config, SiglipVisionConfig, SiglipVisionModel
    from transformers.models.gemma3.modeling_gemma3 import Gemma3MultiModalProjector
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    torch.manual_seed(7)
    vcfg = SiglipVisionConfig(hidden_size=64, intermediate_size=112, num_hidden_layers=2,
                              num_attention_heads=4, image_size=64, patch_size=8,
                              hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    cfg = Gemma3Config(vision_config=vcfg.to_dict(),
                       text_config={"hidden_size": 48, "num_hidden_layers": 1,
                                    "num_attention_heads": 2, "num_key_value_heads": 1,
                                    "head_dim": 24, "intermediate_size": 64, "vocab_size": 300},
                       mm_tokens_per_image=16)
    sig = SiglipVisionModel(vcfg).eval()
    proj = Gemma3MultiModalProjector(cfg).eval()
    with torch.no_grad():
        for name, prm in list(sig.named_parameters()) + list(proj.named_parameters()):
            if name.endswith("bias") or "norm" in name:
                prm.add_(torch.randn_like(prm) * 0.1)
        proj.mm_input_projection_weight.copy_(torch.randn_like(proj.mm_input_projection_weight) * 0.1)
    sig, proj = sig.double(), proj.double()
    vm = getattr(sig, "vision_model", sig)
    g, k = 8, proj.kernel_size
    assert k == 2 and proj.patches_per_image == g
    write_mmproj(os.path.join(OUT, "pool_gemma3.gguf"), vm, vcfg, proj, k)

    pixels = np.frombuffer(open(os.path.join(OUT, "astro.png.rgb"), "rb").read(),
                           dtype=np.uint8).reshape(56, 80, 3)
    px = SiglipImageProcessorPil(size={"height": 64, "width": 64})(
        images=pixels, return_tensors="np")["pixel_values"]
    cases = {"pixels": "pool_pixels_64.f32", "width": 64, "height": 64, "drop": DROP,
             "model": "pool_gemma3.gguf"}
    save_f32("pool_pixels_64.f32", px[0])
    with torch.no_grad():
        x = torch.from_numpy(px).double()
        hidden = sig(pixel_values=x).last_hidden_state
        full = proj(hidden)[0]
        cases["full"] = save_f32("pool_full_adapted.f32", full)

        # Dropped patches: the tower on the kept rows, positions kept.
        keep = [i for i in range(g * g) if i not in DROP]
        h = vm.embeddings(x)[:, keep]
        for layer in vm.encoder.layers:
            o = layer(h, None)
            h = o[0] if isinstance(o, tuple) else o
        h = vm.post_layernorm(h)[0]
        pooled = []
        for wy in range(g // k):
            for wx in range(g // k):
                rows = [j for j, p in enumerate(keep) if (p // g) // k == wy and (p % g) // k == wx]
                if rows:
                    pooled.append(h[rows].mean(0))
        pooled = torch.stack(pooled)[None]
        dropped = torch.matmul(proj.mm_soft_emb_norm(pooled), proj.mm_input_projection_weight)[0]
        cases["dropped"] = save_f32("pool_dropped_adapted.f32", dropped)
    with open(os.path.join(OUT, "pool_manifest.json"), "w") as f:
        json.dump(cases, f, indent=1)
        f.write("\n")
    merge(vcfg, x, keep)


def merge(vcfg, x, keep):
    import torch
    from transformers import Idefics3Config, SiglipVisionModel
    from transformers.models.idefics3.modeling_idefics3 import Idefics3Connector

    torch.manual_seed(11)
    cfg = Idefics3Config(vision_config={"hidden_size": 64}, text_config={"hidden_size": 48, "num_attention_heads": 4,
                                                                  "num_key_value_heads": 2},
                         scale_factor=2)
    sig = SiglipVisionModel(vcfg).eval()
    conn = Idefics3Connector(cfg).eval()
    with torch.no_grad():
        for name, prm in sig.named_parameters():
            if name.endswith("bias") or "norm" in name:
                prm.add_(torch.randn_like(prm) * 0.1)
    sig, conn = sig.double(), conn.double()
    vm = getattr(sig, "vision_model", sig)
    write_mmproj(os.path.join(OUT, "merge_idefics3.gguf"), vm, vcfg, conn, 2, kind="idefics3")
    g = 8
    with torch.no_grad():
        full = conn(sig(pixel_values=x).last_hidden_state)[0]
        cases = {"model": "merge_idefics3.gguf", "full": save_f32("merge_full_adapted.f32", full)}
        h = vm.embeddings(x)[:, keep]
        for layer in vm.encoder.layers:
            o = layer(h, None)
            h = o[0] if isinstance(o, tuple) else o
        h = vm.post_layernorm(h)
        grid = torch.full((1, g * g, 64), float("nan"), dtype=torch.float64)
        grid[:, keep] = h
        out = conn(grid)[0]
        out = out[~torch.isnan(out).any(-1)]
        cases["dropped"] = save_f32("merge_dropped_adapted.f32", out)
    with open(os.path.join(OUT, "pool_manifest.json")) as f:
        manifest = json.load(f)
    manifest["merge"] = cases
    with open(os.path.join(OUT, "pool_manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

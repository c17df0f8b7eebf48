#!/usr/bin/env python3
"""Dev-time reference fixtures for the vision tests (tests/data/vision/).

Run by hand (needs Pillow, transformers and torch, none of which CI has); the outputs are small
and committed. Parts:
  images   crops of a real photo (scikit-image's astronaut.png, Debian python3-skimage) in PNG,
           JPEG, WebP, BMP, GIF; their pixels as Pillow decodes them; broken files (truncated,
           garbage, zero size, a decompression bomb header); and the tensors transformers'
           CLIPImageProcessorPil / SiglipImageProcessorPil make from the PNG's pixels
  vit      tiny random CLIPVisionModel (+ a LLaVA MLP projector) and SiglipVisionModel written
           as llama.cpp-style mmproj GGUF files (clip.vision.* keys) with their outputs on a
           preprocessed image, full and with patches dropped

Layouts: raw little-endian f32 ("*.f32"), raw RGB8 ("*.rgb", [h][w][3]); shapes and settings
in manifest.json.

  python3 tools/make_vision_fixtures.py [--skimage-data DIR] [--parts images,vit]

--skimage-data: a directory with astronaut.png, e.g. from
  apt-get download python3-skimage && dpkg -x python3-skimage_*.deb x
  (x/usr/lib/python3/dist-packages/skimage/data).
"""
import argparse
import io
import json
import os
import struct
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "vision")
MANIFEST = os.path.join(OUT, "manifest.json")


def save_f32(name, array):
    a = np.ascontiguousarray(array, dtype="<f4")
    a.tofile(os.path.join(OUT, name))
    print(f"{name}: {a.shape} ({a.nbytes} bytes)")
    return list(a.shape)


def save_bytes(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    print(f"{name}: {len(data)} bytes")


def load_manifest():
    if os.path.exists(MANIFEST):
        with open(MANIFEST) as f:
            return json.load(f)
    return {}


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_header(width, height, idat=b""):
    """A PNG whose IHDR says width x height (8-bit RGB), with the given (tiny) IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) +
            png_chunk(b"IEND", b""))


def part_images(skimage_data, manifest):
    from PIL import Image
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil
    from transformers.image_utils import PILImageResampling

    astro = Image.open(os.path.join(skimage_data, "astronaut.png")).convert("RGB")
    crop = astro.crop((200, 40, 280, 96))  # 80 x 56: face and helmet, real texture
    files = {}

    def encode(name, img, fmt, **kw):
        buf = io.BytesIO()
        img.save(buf, format=fmt, **kw)
        save_bytes(name, buf.getvalue())
        decoded = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        save_bytes(name + ".rgb", decoded.tobytes())
        files[name] = {"width": decoded.shape[1], "height": decoded.shape[0]}

    encode("astro.png", crop, "PNG")
    encode("astro.bmp", crop, "BMP")
    encode("astro.jpg", crop, "JPEG", quality=90)
    encode("astro_lossless.webp", crop, "WEBP", lossless=True)
    encode("astro.webp", crop, "WEBP", quality=85)
    encode("astro.gif", crop.quantize(64), "GIF")
    encode("astro_grey.png", crop.convert("L"), "PNG")
    encode("astro_palette.png", crop.quantize(32), "PNG")
    rgba = crop.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(crop.size))
    encode("astro_rgba.png", rgba, "PNG")
    # Narrow 4:2:0 JPEGs with an even height: libswscale's SIMD YUV -> RGB path (taken without
    # SWS_ACCURATE_RND) left the last column of such rows unconverted and wrote past the row.
    encode("astro_narrow_17x2.jpg", crop.resize((17, 2)), "JPEG", quality=90)
    encode("astro_narrow_1x2.jpg", crop.resize((1, 2)), "JPEG", quality=90)
    for name in files:  # exact for lossless formats, close for JPEG / lossy WebP
        files[name]["lossy"] = name.endswith(".jpg") or name == "astro.webp"

    png = open(os.path.join(OUT, "astro.png"), "rb").read()
    save_bytes("bad_truncated.png", png[: len(png) // 2])
    save_bytes("bad_garbage.bin", bytes((i * 37 + 11) % 256 for i in range(4096)))
    save_bytes("bad_zero_size.png", png_with_header(0, 0, zlib.compress(b"\0")))
    save_bytes("bad_bomb.png", png_with_header(60000, 60000, zlib.compress(b"\0" * 100)))
    jpg = open(os.path.join(OUT, "astro.jpg"), "rb").read()
    save_bytes("bad_truncated.jpg", jpg[:200])

    pixels = np.asarray(crop)  # the PNG's pixels, as both sides decode them
    cases = {}
    clip = CLIPImageProcessorPil(size={"shortest_edge": 40}, crop_size={"height": 36, "width": 36})
    t = clip(images=pixels, return_tensors="np")["pixel_values"][0]
    cases["clip_40_36"] = {"shape": save_f32("pre_clip_40_36.f32", t), "kind": "clip",
                           "size": 40, "crop": 36}
    sig = SiglipImageProcessorPil(size={"height": 48, "width": 48})
    t = sig(images=pixels, return_tensors="np")["pixel_values"][0]
    cases["siglip_48"] = {"shape": save_f32("pre_siglip_48.f32", t), "kind": "siglip",
                          "width": 48, "height": 48, "filter": "bicubic"}
    # Upscaling, bilinear, non-square.
    sig = SiglipImageProcessorPil(size={"height": 70, "width": 100},
                                  resample=PILImageResampling.BILINEAR)
    t = sig(images=pixels, return_tensors="np")["pixel_values"][0]
    cases["siglip_bilinear_100x70"] = {"shape": save_f32("pre_siglip_bilinear_100x70.f32", t),
                                       "kind": "siglip", "width": 100, "height": 70,
                                       "filter": "bilinear"}
    # CLIP on a portrait image (the long side is the height) with upscaling.
    portrait = np.ascontiguousarray(pixels.transpose(1, 0, 2))
    save_bytes("astro_portrait.rgb", portrait.tobytes())
    clip = CLIPImageProcessorPil(size={"shortest_edge": 64}, crop_size={"height": 60, "width": 60})
    t = clip(images=portrait, return_tensors="np")["pixel_values"][0]
    cases["clip_portrait_64_60"] = {"shape": save_f32("pre_clip_portrait_64_60.f32", t),
                                    "kind": "clip", "size": 64, "crop": 60,
                                    "source": "astro_portrait.rgb", "width": 56, "height": 80}
    manifest["images"] = files
    manifest["preprocess"] = cases

    # Pillow's resize at larger factors on a noise image both sides compute (no input stored).
    resizes = []
    for (w, h), (ow, oh), filt in (((203, 157), (17, 13), "bicubic"), ((203, 157), (64, 200), "bilinear"),
                                   ((300, 41), (97, 120), "bicubic"), ((31, 480), (5, 7), "bicubic")):
        img = Image.fromarray(noise_image(w, h))
        f = Image.BICUBIC if filt == "bicubic" else Image.BILINEAR
        out = np.asarray(img.resize((ow, oh), f))
        # Pillow 13 sometimes runs the vertical pass first (its rule is internal); we always
        # run the horizontal one first, as Pillow's Resample.c long did: exact where Pillow did.
        h_first = (out == np.asarray(img.resize((ow, h), f).resize((ow, oh), f))).all()
        name = f"resize_{w}x{h}_{ow}x{oh}_{filt}.rgb"
        save_bytes(name, out.tobytes())
        resizes.append({"file": name, "width": w, "height": h, "out_width": ow, "out_height": oh,
                        "filter": filt, "horizontal_first": bool(h_first)})
    manifest["resize"] = resizes


def noise_image(w, h):
    """Pixels tests/vision_image_test.cpp computes the same way (32-bit hash of x, y, c)."""
    y, x, c = np.meshgrid(np.arange(h, dtype=np.uint64), np.arange(w, dtype=np.uint64),
                          np.arange(3, dtype=np.uint64), indexing="ij")
    v = ((x * 73856093) ^ (y * 19349663) ^ (c * 83492791)) & 0xFFFFFFFF
    return ((v >> 7) & 255).astype(np.uint8)


def write_mmproj(path, vm, cfg, kind, n_blocks, projector=None):
    """The vision tower (first n_blocks blocks) as llama.cpp's mmproj GGUF, all f32."""
    import gguf

    w = gguf.GGUFWriter(path, "clip")
    w.add_bool("clip.has_vision_encoder", True)
    w.add_bool("clip.has_text_encoder", False)
    w.add_uint32("clip.vision.image_size", cfg.image_size)
    w.add_uint32("clip.vision.patch_size", cfg.patch_size)
    w.add_uint32("clip.vision.embedding_length", cfg.hidden_size)
    w.add_uint32("clip.vision.feed_forward_length", cfg.intermediate_size)
    w.add_uint32("clip.vision.block_count", n_blocks)
    w.add_uint32("clip.vision.attention.head_count", cfg.num_attention_heads)
    w.add_float32("clip.vision.attention.layer_norm_epsilon", cfg.layer_norm_eps)
    w.add_bool("clip.use_gelu", cfg.hidden_act != "quick_gelu")
    mean, std = ((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)) \
        if kind == "clip" else ((0.5,) * 3, (0.5,) * 3)
    w.add_array("clip.vision.image_mean", list(mean))
    w.add_array("clip.vision.image_std", list(std))
    if projector is not None:
        w.add_bool("clip.has_llava_projector", True)
        w.add_string("clip.projector_type", "mlp")
        w.add_uint32("clip.vision.projection_dim", projector[2].weight.shape[0])

    def t(name, x):
        w.add_tensor(name, np.ascontiguousarray(x.detach().double().numpy().astype(np.float32)))

    e = vm.embeddings
    t("v.patch_embd.weight", e.patch_embedding.weight)  # [d, 3, p, p]
    if e.patch_embedding.bias is not None:
        t("v.patch_embd.bias", e.patch_embedding.bias)
    if kind == "clip":
        t("v.class_embd", e.class_embedding)
        t("v.pre_ln.weight", vm.pre_layrnorm.weight)
        t("v.pre_ln.bias", vm.pre_layrnorm.bias)
    t("v.position_embd.weight", e.position_embedding.weight)
    for i in range(n_blocks):
        L = vm.encoder.layers[i]
        b = f"v.blk.{i}"
        for ours, mod in (("attn_q", L.self_attn.q_proj), ("attn_k", L.self_attn.k_proj),
                          ("attn_v", L.self_attn.v_proj), ("attn_out", L.self_attn.out_proj),
                          ("ffn_up", L.mlp.fc1), ("ffn_down", L.mlp.fc2),
                          ("ln1", L.layer_norm1), ("ln2", L.layer_norm2)):
            t(f"{b}.{ours}.weight", mod.weight)
            t(f"{b}.{ours}.bias", mod.bias)
    if kind == "siglip":
        t("v.post_ln.weight", vm.post_layernorm.weight)
        t("v.post_ln.bias", vm.post_layernorm.bias)
    if projector is not None:
        for j in (0, 2):
            t(f"mm.{j}.weight", projector[j].weight)
            t(f"mm.{j}.bias", projector[j].bias)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{os.path.basename(path)}: {os.path.getsize(path)} bytes")


def part_vit(manifest):
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModel, SiglipVisionConfig, SiglipVisionModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    torch.manual_seed(0)
    pixels = np.frombuffer(open(os.path.join(OUT, "astro.png.rgb"), "rb").read(),
                           dtype=np.uint8).reshape(56, 80, 3)
    cases = {}
    # Patches dropped in every masked case: a 2 x 2 block of the 4 x 4 grid and one corner.
    drop = [5, 6, 9, 10, 15]

    def run_layers(vm, h, n):
        """The first n encoder blocks by hand (so rows can be removed before them)."""
        for layer in vm.encoder.layers[:n]:
            out = layer(h, None)
            h = out[0] if isinstance(out, tuple) else out
        return h

    def randomize(model):
        # Non-trivial norms and biases (default init: ones and zeros) so that every term counts.
        with torch.no_grad():
            for name, prm in model.named_parameters():
                if name.endswith("bias") or "norm" in name:
                    prm.add_(torch.randn_like(prm) * 0.1)

    # ---- CLIP (quick-GELU, class token, pre-LN) + a LLaVA projector; file stores the first
    # n_layer - 1 blocks (llama.cpp's converter drops the last for LLaVA's feature layer -2).
    ccfg = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                            num_attention_heads=4, image_size=32, patch_size=8,
                            hidden_act="quick_gelu", layer_norm_eps=1e-5)
    clip = CLIPVisionModel(ccfg).eval()
    randomize(clip)
    proj = torch.nn.Sequential(torch.nn.Linear(64, 96), torch.nn.GELU(), torch.nn.Linear(96, 80))
    clip, proj = clip.double(), proj.double()
    vm = getattr(clip, "vision_model", clip)  # transformers < 5 wraps the tower
    L = ccfg.num_hidden_layers
    write_mmproj(os.path.join(OUT, "clip_tiny.gguf"), vm, ccfg, "clip", L - 1, proj)
    px = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})(
        images=pixels, return_tensors="np")["pixel_values"]
    save_f32("vit_clip_pixels_32.f32", px[0])
    with torch.no_grad():
        x = torch.from_numpy(px).double()
        hs = run_layers(vm, vm.pre_layrnorm(vm.embeddings(x)), L - 1)[0]
        full = run_layers(vm, vm.pre_layrnorm(vm.embeddings(x)), L)[0]
        assert torch.allclose(full, clip(pixel_values=x).last_hidden_state[0], atol=1e-10)
        cases["clip_full"] = {"pixels": "vit_clip_pixels_32.f32", "width": 32, "height": 32,
                              "hidden": save_f32("vit_clip_full_hidden.f32", hs),
                              "adapted": save_f32("vit_clip_full_adapted.f32", proj(hs[1:]))}
        # Patch dropping: rows removed after the position embedding, positions kept.
        emb = vm.embeddings(x)
        keep = [0] + [1 + i for i in range(16) if i not in drop]
        hs = run_layers(vm, vm.pre_layrnorm(emb[:, keep]), L - 1)[0]
        cases["clip_dropped"] = {"pixels": "vit_clip_pixels_32.f32", "width": 32, "height": 32,
                                 "drop": drop,
                                 "hidden": save_f32("vit_clip_dropped_hidden.f32", hs),
                                 "adapted": save_f32("vit_clip_dropped_adapted.f32", proj(hs[1:]))}
        # Another resolution: 48 x 40 pixels, 6 x 5 patches, positions interpolated (bicubic).
        px2 = CLIPImageProcessorPil(size={"shortest_edge": 40}, crop_size={"height": 40, "width": 48})(
            images=pixels, return_tensors="np")["pixel_values"]
        save_f32("vit_clip_pixels_48x40.f32", px2[0])
        emb = vm.embeddings(torch.from_numpy(px2).double(), interpolate_pos_encoding=True)
        hs = run_layers(vm, vm.pre_layrnorm(emb), L - 1)[0]
        cases["clip_interpolated"] = {"pixels": "vit_clip_pixels_48x40.f32", "width": 48,
                                      "height": 40,
                                      "hidden": save_f32("vit_clip_interp_hidden.f32", hs)}

    # ---- SigLIP (gelu tanh, no class token, patch bias, post-LN), all blocks.
    scfg = SiglipVisionConfig(hidden_size=64, intermediate_size=112, num_hidden_layers=2,
                              num_attention_heads=4, image_size=32, patch_size=8,
                              hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    sig = SiglipVisionModel(scfg).eval()
    randomize(sig)
    sig = sig.double()
    vm = getattr(sig, "vision_model", sig)
    write_mmproj(os.path.join(OUT, "siglip_tiny.gguf"), vm, scfg, "siglip", 2)
    px = SiglipImageProcessorPil(size={"height": 32, "width": 32})(
        images=pixels, return_tensors="np")["pixel_values"]
    save_f32("vit_siglip_pixels_32.f32", px[0])
    with torch.no_grad():
        x = torch.from_numpy(px).double()
        out = sig(pixel_values=x).last_hidden_state[0]
        cases["siglip_full"] = {"pixels": "vit_siglip_pixels_32.f32", "width": 32, "height": 32,
                                "hidden": save_f32("vit_siglip_full_hidden.f32", out)}
        emb = vm.embeddings(x)
        keep = [i for i in range(16) if i not in drop]
        assert torch.allclose(vm.post_layernorm(run_layers(vm, emb, 2))[0], out, atol=1e-10)
        out = vm.post_layernorm(run_layers(vm, emb[:, keep], 2))[0]
        cases["siglip_dropped"] = {"pixels": "vit_siglip_pixels_32.f32", "width": 32, "height": 32,
                                   "drop": drop,
                                   "hidden": save_f32("vit_siglip_dropped_hidden.f32", out)}
        px2 = SiglipImageProcessorPil(size={"height": 24, "width": 56})(
            images=pixels, return_tensors="np")["pixel_values"]
        save_f32("vit_siglip_pixels_56x24.f32", px2[0])
        out = sig(pixel_values=torch.from_numpy(px2).double(),
                  interpolate_pos_encoding=True).last_hidden_state[0]
        cases["siglip_interpolated"] = {"pixels": "vit_siglip_pixels_56x24.f32", "width": 56,
                                        "height": 24,
                                        "hidden": save_f32("vit_siglip_interp_hidden.f32", out)}
    cases["clip_full"]["model"] = "clip_tiny.gguf"
    for name, c in cases.items():
        c["model"] = "clip_tiny.gguf" if name.startswith("clip") else "siglip_tiny.gguf"
    manifest["vit"] = cases


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--skimage-data", default="/usr/lib/python3/dist-packages/skimage/data")
    ap.add_argument("--parts", default="images,vit")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    manifest = load_manifest()
    parts = args.parts.split(",")
    if "images" in parts:
        part_images(args.skimage_data, manifest)
    if "vit" in parts:
        part_vit(manifest)
    with open(MANIFEST, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()

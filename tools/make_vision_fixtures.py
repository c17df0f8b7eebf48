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
    for name in files:  # exact for lossless formats, close for JPEG / lossy WebP
        files[name]["lossy"] = name in ("astro.jpg", "astro.webp")

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


def part_vit(manifest):
    pass  # filled below


if __name__ == "__main__":
    main()

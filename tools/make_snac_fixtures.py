#!/usr/bin/env python3
"""Reference fixtures for tests/snac_test.cpp, from the `snac` package's own code.

    python3 tools/make_snac_fixtures.py [OUT_DIR]      (default tests/data/snac)

A tiny SNAC of the 24 kHz structure (rates 8,8,4,2, vq_strides 4,2,1, depthwise, noise blocks)
with random weights is written with tools/convert_snac.py; random codes are decoded by
snac.SNAC.decode twice:
  ref_nonoise.f32  noise blocks skipped (our decoder with noise off must match);
  ref_noise.f32    NoiseBlock fed our counter-based noise (audio/codec/snac_ops.h, repeated here
                   in numpy), so the noise path (linear, scaling, positions) is checked too.
Files: snac_tiny.gguf (and snac_tiny_bf16.gguf: bf16 matrices), codes.txt (one line per level, space-separated), ref_*.f32 (raw
little-endian float32, n_groups * 2048 samples), meta.txt (seed, n_groups).
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import convert_snac  # noqa: E402

NOISE_SEED = 1234
N_GROUPS = 5
TINY = dict(sampling_rate=24000, encoder_dim=4, encoder_rates=[2, 4, 8, 8], latent_dim=32,
            decoder_dim=64, decoder_rates=[8, 8, 4, 2], attn_window_size=None, codebook_size=64,
            codebook_dim=8, vq_strides=[4, 2, 1], noise=True, depthwise=True)

M64 = (1 << 64) - 1


def noise_values(seed, block, t0, n):
    """audio/codec/snac_ops.cpp noise_value, vectorised (uint64 arithmetic wraps)."""
    with np.errstate(over="ignore"):
        t = np.arange(t0, t0 + n, dtype=np.uint64)
        base = np.uint64((seed * 0x9E3779B97F4A7C15 + (block + 1) * 0xD1B54A32D192ED03) & M64)
        r = base + t
        r = (r ^ (r >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        r = (r ^ (r >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        r = r ^ (r >> np.uint64(31))
    u1 = ((r >> np.uint64(32)).astype(np.float64) + 0.5) / 4294967296.0
    u2 = (r & np.uint64(0xFFFFFFFF)).astype(np.float64) / 4294967296.0
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)).astype(np.float32)


def randomize(model, g):
    """Weights away from PyTorch's init so every path matters (alphas, biases, gains)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("alpha"):
                p.copy_(torch.rand(p.shape, generator=g) * 1.5 + 0.3)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
            elif name.endswith("original0"):  # weight-norm gain
                p.mul_(torch.rand(p.shape, generator=g) * 1.0 + 0.5)
            elif "codebook" in name:
                p.copy_(torch.randn(p.shape, generator=g))


def main():
    from snac import SNAC
    from snac.layers import NoiseBlock

    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data", "snac")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    model = SNAC(**TINY).eval()
    randomize(model, g)
    convert_snac.write_snac_gguf(model, os.path.join(out, "snac_tiny.gguf"), "f32", "snac-tiny-random")
    # The same model with bf16 matrices (the converter's --type bf16): the CPU's bf16 panels.
    convert_snac.write_snac_gguf(model, os.path.join(out, "snac_tiny_bf16.gguf"), "bf16", "snac-tiny-random")

    rng = np.random.default_rng(7)
    codes = [rng.integers(0, TINY["codebook_size"], size=N_GROUPS * (4 // s)) for s in TINY["vq_strides"]]
    with open(os.path.join(out, "codes.txt"), "w") as f:
        for c in codes:
            f.write(" ".join(str(int(v)) for v in c) + "\n")
    tcodes = [torch.tensor(c, dtype=torch.long)[None, :] for c in codes]

    blocks = [m for m in model.modules() if isinstance(m, NoiseBlock)]
    orig = NoiseBlock.forward

    def no_noise(self, x):
        return x

    def our_noise(self, x):
        T = x.shape[-1]
        n = torch.from_numpy(noise_values(NOISE_SEED, blocks.index(self), 0, T))[None, None, :]
        return x + n * self.linear(x)

    with torch.no_grad():
        NoiseBlock.forward = no_noise
        a = model.decode(tcodes)[0, 0].numpy().astype("<f4")
        NoiseBlock.forward = our_noise
        b = model.decode(tcodes)[0, 0].numpy().astype("<f4")
        NoiseBlock.forward = orig
    assert a.shape[0] == N_GROUPS * 2048, a.shape
    a.tofile(os.path.join(out, "ref_nonoise.f32"))
    b.tofile(os.path.join(out, "ref_noise.f32"))
    with open(os.path.join(out, "meta.txt"), "w") as f:
        f.write(f"noise_seed {NOISE_SEED}\nn_groups {N_GROUPS}\n")
    print(f"rms nonoise {np.sqrt((a ** 2).mean()):.4f} noise {np.sqrt((b ** 2).mean()):.4f} "
          f"max|diff| {np.abs(a - b).max():.4f} max|a| {np.abs(a).max():.4f}")


if __name__ == "__main__":
    main()

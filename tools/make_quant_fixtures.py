#!/usr/bin/env python3
"""Writes tests/data/quant/*.bin: gguf-py's own dequantization of random valid blocks, and
gguf-py's quantization of fixed inputs, as the independent reference for tests/quant_test.cpp.

Usage: python3 tools/make_quant_fixtures.py [out_dir]   (default: tests/data/quant)

File format (little-endian), two kinds:

  <type>.bin        decode fixture
    char[4]  "OQDQ"
    u32      ggml type id (GGUF tensor type)
    u32      n    number of elements
    u32      nb   number of encoded bytes
    u8[nb]   encoded row (random valid blocks / random finite f16, bf16 values)
    f32[n]   gguf.quants.dequantize(encoded, type)

  <type>_quant.bin  encode fixture (types gguf-py can quantize: Q8_0, Q4_0, Q5_0, F16, BF16)
    char[4]  "OQQU"
    u32      ggml type id
    u32      n
    u32      nb
    f32[n]   input values
    u8[nb]   gguf.quants.quantize(input, type)

Random blocks: every quant field is random bytes (so every bit pattern of nibbles, high bits and
packed 6-bit scales occurs); the f16 scales d / dmin are random finite values with magnitudes
2^-24 .. 2^-1 and random sign (d) or positive (dmin), including a few subnormal f16 scales.
"""
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants

RNG = np.random.default_rng(20240607)

# name -> (type, block bytes, block elements, byte offsets of f16 scale fields, blocks)
BLOCK_TYPES = {
    "q8_0": (T.Q8_0, 34, 32, [0], 48),
    "q4_0": (T.Q4_0, 18, 32, [0], 48),
    "q5_0": (T.Q5_0, 22, 32, [0], 48),
    "q4_k": (T.Q4_K, 144, 256, [0, 2], 24),
    "q5_k": (T.Q5_K, 176, 256, [0, 2], 24),
    "q6_k": (T.Q6_K, 210, 256, [208], 24),
}


def random_scale(signed: bool) -> np.uint16:
    mag = np.float32(2.0 ** RNG.uniform(-24, -1))
    if signed and RNG.integers(2):
        mag = -mag
    return np.array([mag], dtype=np.float16).view(np.uint16)[0]


def random_blocks(block_bytes: int, offsets: list[int], n_blocks: int) -> np.ndarray:
    raw = RNG.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for b in range(n_blocks):
        for k, off in enumerate(offsets):
            h = random_scale(signed=(k == 0))
            raw[b, off:off + 2] = np.array([h], dtype=np.uint16).view(np.uint8)
    return raw.reshape(-1)


def random_finite_16(n: int, exp_mask: int, exp_all_ones: int) -> np.ndarray:
    v = RNG.integers(0, 1 << 16, size=n, dtype=np.uint32).astype(np.uint16)
    bad = (v & exp_mask) == exp_all_ones  # inf / nan: not "finite values"
    v[bad] ^= np.uint16(1 << 14)  # clear the top exponent bit: now finite
    return v


def write_decode(out_dir: str, name: str, qtype: T, raw: np.ndarray, n: int) -> None:
    ref = quants.dequantize(raw, qtype).astype(np.float32).reshape(-1)
    assert ref.size == n, (name, ref.size, n)
    with open(os.path.join(out_dir, f"{name}.bin"), "wb") as f:
        f.write(b"OQDQ" + struct.pack("<III", int(qtype), n, raw.size))
        f.write(raw.tobytes())
        f.write(ref.tobytes())


def write_encode(out_dir: str, name: str, qtype: T, x: np.ndarray) -> None:
    enc = np.asarray(quants.quantize(x, qtype)).view(np.uint8).reshape(-1)
    with open(os.path.join(out_dir, f"{name}_quant.bin"), "wb") as f:
        f.write(b"OQQU" + struct.pack("<III", int(qtype), x.size, enc.size))
        f.write(x.astype(np.float32).tobytes())
        f.write(enc.tobytes())


def encode_inputs(n: int) -> np.ndarray:
    x = (RNG.standard_normal(n) * RNG.choice([1e-3, 0.1, 1.0, 30.0], size=n // 32).repeat(32))
    x = x.astype(np.float32)
    x[:32] = 0.0                                   # all-zero block: d = 0 path
    x[32:64] = np.arange(32, dtype=np.float32) - 16  # exact grid points and .5 ties
    x[64] = 1e-8                                   # tiny values next to big ones
    return x


def main() -> None:
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "quant")
    os.makedirs(out_dir, exist_ok=True)
    for name, (qtype, bb, be, offs, nblk) in BLOCK_TYPES.items():
        write_decode(out_dir, name, qtype, random_blocks(bb, offs, nblk), nblk * be)
    n16 = 1024
    write_decode(out_dir, "f16", T.F16, random_finite_16(n16, 0x7C00, 0x7C00).view(np.uint8), n16)
    write_decode(out_dir, "bf16", T.BF16, random_finite_16(n16, 0x7F80, 0x7F80).view(np.uint8), n16)
    x = encode_inputs(1024)
    for name, qtype in [("q8_0", T.Q8_0), ("q4_0", T.Q4_0), ("q5_0", T.Q5_0), ("f16", T.F16),
                        ("bf16", T.BF16)]:
        write_encode(out_dir, name, qtype, x)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generates the GGUF reader/writer fixtures under tests/data/gguf/.

Good files are written by the `gguf` package's GGUFWriter (an implementation independent of
ours) and re-read with its GGUFReader; next to each one a JSON lists the keys, values, tensor
shapes, offsets and data bytes as the Python side knows them. tests/gguf_test.cpp compares.

Bad files (tests/data/gguf/bad/) are built byte by byte, one defect each, from a small valid
layout; bad/expected.txt maps each to the StatusCode and a message substring our reader gives.

    python3 tools/make_gguf_fixtures.py        # rewrites tests/data/gguf/
"""
import json
import math
import os
import struct
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGUFReader, GGUFValueType as VT, GGUFWriter, GGMLQuantizationType as QT

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "gguf"
BAD = OUT / "bad"

TYPE_NAME = {VT.UINT8: "u8", VT.INT8: "i8", VT.UINT16: "u16", VT.INT16: "i16", VT.UINT32: "u32",
             VT.INT32: "i32", VT.FLOAT32: "f32", VT.BOOL: "bool", VT.STRING: "string",
             VT.ARRAY: "array", VT.UINT64: "u64", VT.INT64: "i64", VT.FLOAT64: "f64"}


def f32(x):
    """The float32 nearest to x, as a Python float (what the file stores)."""
    return float(np.float32(x))


def json_number(v, vt):
    if vt in (VT.FLOAT32, VT.FLOAT64):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f32(v) if vt == VT.FLOAT32 else float(v)
    return v


def json_value(v, vt, sub=None):
    """JSON form of a metadata value. Arrays: {"elem_type", "value": [...]}; nested arrays nest."""
    if vt == VT.ARRAY:
        et = sub if sub is not None else VT.get_type(v[0])
        return {"elem_type": TYPE_NAME[et], "value": [json_value(e, et) for e in v]}
    return json_number(v, vt)


class Fixture:
    """A GGUFWriter plus the expectations we record while adding to it."""

    def __init__(self, arch, alignment=None):
        self.w = GGUFWriter(None, arch)
        self.kv = [{"key": "general.architecture", "type": "string", "value": arch}]
        self.tensors = []
        self.alignment = 32
        if alignment:
            self.w.add_custom_alignment(alignment)
            self.alignment = alignment
            self.kv.append({"key": "general.alignment", "type": "u32", "value": alignment})

    def add(self, key, value, vt, sub=None):
        self.w.add_key_value(key, value, vt, sub_type=sub)
        jv = json_value(value, vt, sub)
        if vt == VT.ARRAY:
            self.kv.append({"key": key, "type": "array", **jv})
        else:
            self.kv.append({"key": key, "type": TYPE_NAME[vt], "value": jv})

    def add_tensor(self, name, qtype, ne, data: bytes):
        """ne in ggml order (ne[0] innermost); data is the encoded tensor."""
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        rows = int(np.prod(ne[1:])) if len(ne) > 1 else 1
        row_bytes = ne[0] // block * type_size
        assert len(data) == rows * row_bytes
        byte_shape = tuple(reversed(ne[1:])) + (row_bytes,)
        arr = np.frombuffer(data, dtype=np.uint8).reshape(byte_shape)
        self.w.add_tensor(name, arr, raw_dtype=qtype)
        self.tensors.append({"name": name, "type": int(qtype), "type_name": qtype.name, "ne": list(ne),
                             "n_bytes": len(data), "data_hex": data.hex()})

    def write(self, path: Path, version=3):
        self.w.path = path
        self.w.write_header_to_file(path)
        self.w.write_kv_data_to_file()
        self.w.write_tensors_to_file()
        self.w.close()
        if version != 3:
            # GGUF v2 has v3's layout for little-endian files (v1 differed: u32 counts), so a v2
            # file is a v3 file with the version field changed.
            b = bytearray(path.read_bytes())
            b[4:8] = struct.pack("<I", version)
            path.write_bytes(bytes(b))
        self.check_and_dump(path, version)

    def check_and_dump(self, path: Path, version):
        data = path.read_bytes()
        r = GGUFReader(path) if version == 3 else None
        if r is None:  # gguf-py reads v2 too, but verify through a v3 copy to keep it simple
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data[:4] + struct.pack("<I", 3) + data[8:])
            r = GGUFReader(tmp)
        # Cross-check our recorded expectations against gguf-py's reader.
        assert [f.name for f in r.fields.values() if not f.name.startswith("GGUF.")] == [k["key"] for k in self.kv]
        data_offset = int(r.data_offset)
        for exp, t in zip(self.tensors, r.tensors, strict=True):
            assert t.name == exp["name"] and int(t.tensor_type) == exp["type"]
            assert [int(x) for x in t.shape] == exp["ne"], (t.shape, exp["ne"])
            assert t.n_bytes == exp["n_bytes"]
            assert data[t.data_offset:t.data_offset + t.n_bytes].hex() == exp["data_hex"]
            exp["offset"] = int(t.data_offset) - data_offset
        if version != 3:
            tmp.unlink()
        doc = {"version": version, "alignment": self.alignment, "data_offset": data_offset,
               "file_size": len(data), "kv": self.kv, "tensors": self.tensors}
        path.with_suffix(".json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


def pattern(n, seed):
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def tensor_bytes(qtype, ne, seed):
    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    rows = int(np.prod(ne[1:])) if len(ne) > 1 else 1
    return pattern(ne[0] // block * type_size * rows, seed)


def make_all_types():
    fx = Fixture("test", alignment=64)
    fx.add("t.u8", 255, VT.UINT8)
    fx.add("t.i8", -128, VT.INT8)
    fx.add("t.u16", 65535, VT.UINT16)
    fx.add("t.i16", -32768, VT.INT16)
    fx.add("t.u32", 4294967295, VT.UINT32)
    fx.add("t.i32", -2147483648, VT.INT32)
    fx.add("t.u64", 2**64 - 1, VT.UINT64)
    fx.add("t.i64", -2**63, VT.INT64)
    fx.add("t.f32", 3.14159, VT.FLOAT32)
    fx.add("t.f32_tiny", 1e-45, VT.FLOAT32)
    fx.add("t.f32_neg_zero", -0.0, VT.FLOAT32)
    fx.add("t.f32_inf", float("inf"), VT.FLOAT32)
    fx.add("t.f64", -1.0e-300, VT.FLOAT64)
    fx.add("t.f64_nan", float("nan"), VT.FLOAT64)
    fx.add("t.bool_true", True, VT.BOOL)
    fx.add("t.bool_false", False, VT.BOOL)
    fx.add("t.str", "hello", VT.STRING)
    fx.add("t.str_utf8", "héllo wörld ✓ 日本語 🙂", VT.STRING)
    fx.add("t.str_empty", "", VT.STRING)
    fx.add("t.str_escapes", "a\nb\"c\\d\te", VT.STRING)
    fx.add("t.arr.u8", [0, 1, 255], VT.ARRAY, VT.UINT8)
    fx.add("t.arr.i8", [-128, 0, 127], VT.ARRAY, VT.INT8)
    fx.add("t.arr.u16", [0, 65535], VT.ARRAY, VT.UINT16)
    fx.add("t.arr.i16", [-32768, 32767], VT.ARRAY, VT.INT16)
    fx.add("t.arr.u32", [1, 2, 4294967295], VT.ARRAY, VT.UINT32)
    fx.add("t.arr.i32", [-1, 0, 2147483647], VT.ARRAY, VT.INT32)
    fx.add("t.arr.u64", [0, 2**64 - 1], VT.ARRAY, VT.UINT64)
    fx.add("t.arr.i64", [-2**63, 2**63 - 1], VT.ARRAY, VT.INT64)
    fx.add("t.arr.f32", [0.5, -1.25, 1e30, 3.3], VT.ARRAY, VT.FLOAT32)
    fx.add("t.arr.f64", [0.1, -2.5e200], VT.ARRAY, VT.FLOAT64)
    fx.add("t.arr.bool", [True, False, True], VT.ARRAY, VT.BOOL)
    fx.add("t.arr.str", ["a", "", "ü", "<|im_start|>"], VT.ARRAY, VT.STRING)
    fx.add("t.arr.nested", [[1, 2], [3], [4, 5, 6]], VT.ARRAY)
    fx.add("t.arr.nested3", [[["x"]], [["y", "z"], ["w"]]], VT.ARRAY)
    specs = [("w.f32", QT.F32, [5, 3]), ("w.f16", QT.F16, [7, 2]), ("w.bf16", QT.BF16, [4, 3]),
             ("w.q8_0", QT.Q8_0, [64, 2]), ("w.q4_0", QT.Q4_0, [32]), ("w.q4_K", QT.Q4_K, [256, 2]),
             ("w.q5_K", QT.Q5_K, [256]), ("w.q6_K", QT.Q6_K, [512]), ("w.f32_3d", QT.F32, [4, 3, 2]),
             ("w.f32_4d", QT.F32, [3, 1, 2, 1])]
    for i, (name, qt, ne) in enumerate(specs):
        fx.add_tensor(name, qt, ne, tensor_bytes(qt, ne, 100 + i))
    fx.write(OUT / "good_v3_types.gguf")


def make_llama_like(version, name):
    fx = Fixture("llama")
    fx.add("general.name", "tiny", VT.STRING)
    fx.add("llama.context_length", 128, VT.UINT32)
    fx.add("llama.embedding_length", 64, VT.UINT32)
    fx.add("llama.attention.layer_norm_rms_epsilon", 1e-5, VT.FLOAT32)
    fx.add("tokenizer.ggml.tokens", ["<unk>", "<s>", "</s>", "▁a", "b"], VT.ARRAY, VT.STRING)
    fx.add("tokenizer.ggml.scores", [0.0, 0.0, 0.0, -1.5, -2.0], VT.ARRAY, VT.FLOAT32)
    fx.add("tokenizer.ggml.token_type", [2, 3, 3, 1, 1], VT.ARRAY, VT.INT32)
    for i, (tn, qt, ne) in enumerate([("token_embd.weight", QT.F16, [64, 5]),
                                      ("blk.0.attn_q.weight", QT.Q8_0, [64, 64]),
                                      ("output_norm.weight", QT.F32, [64])]):
        fx.add_tensor(tn, qt, ne, tensor_bytes(qt, ne, 200 + i))
    fx.write(OUT / name, version=version)


def make_writer_reference():
    """The content tests/gguf_test.cpp builds with GgufWriter; bytes must match exactly."""
    w = GGUFWriter(None, "ref")
    w.add_custom_alignment(64)
    w.add_key_value("ref.u8", 7, VT.UINT8)
    w.add_key_value("ref.i8", -7, VT.INT8)
    w.add_key_value("ref.u16", 700, VT.UINT16)
    w.add_key_value("ref.i16", -700, VT.INT16)
    w.add_key_value("ref.u32", 70000, VT.UINT32)
    w.add_key_value("ref.i32", -70000, VT.INT32)
    w.add_key_value("ref.u64", 7 * 10**12, VT.UINT64)
    w.add_key_value("ref.i64", -7 * 10**12, VT.INT64)
    w.add_key_value("ref.f32", 0.75, VT.FLOAT32)
    w.add_key_value("ref.f64", 1.0 / 3.0, VT.FLOAT64)
    w.add_key_value("ref.bool", True, VT.BOOL)
    w.add_key_value("ref.str", "omnirt ✓", VT.STRING)
    w.add_key_value("ref.strs", ["a", "bc", ""], VT.ARRAY, sub_type=VT.STRING)
    w.add_key_value("ref.f32s", [1.0, -2.5, 1e-3], VT.ARRAY, sub_type=VT.FLOAT32)
    w.add_key_value("ref.i32s", [1, -2, 3], VT.ARRAY, sub_type=VT.INT32)
    w.add_key_value("ref.nested", [[1, 2], [3]], VT.ARRAY)
    w.add_tensor("a", np.arange(6, dtype=np.float32).reshape(2, 3))           # ne [3, 2]
    w.add_tensor("b", np.array([1.0, -1.0, 0.5], dtype=np.float16))            # ne [3]
    q = bytes(range(34))                                                        # one Q8_0 block
    w.add_tensor("c", np.frombuffer(q, dtype=np.uint8), raw_dtype=QT.Q8_0)     # ne [32]
    path = OUT / "writer_reference.gguf"
    w.write_header_to_file(path)
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


# ---- bad files: byte-level builder ------------------------------------------------------------

def s(text):
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(b)) + b


def kv(key, vt, payload):
    return s(key) + struct.pack("<I", vt) + payload


def u32(v): return struct.pack("<I", v)
def u64(v): return struct.pack("<Q", v)


def tinfo(name, ne, ttype=0, offset=0):
    return s(name) + u32(len(ne)) + b"".join(u64(n) for n in ne) + u32(ttype) + u64(offset)


def build(kvs=(), tinfos=(), data=b"", version=3, n_tensors=None, n_kv=None, magic=b"GGUF",
          alignment=32):
    head = magic + u32(version) + u64(len(tinfos) if n_tensors is None else n_tensors) + \
        u64(len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(tinfos)
    body += b"\0" * (-len(body) % alignment)
    return body + data


NAME_KV = kv("general.name", 8, s("bad"))
F32x8 = bytes(range(32))  # one f32 [8] tensor's data


def nested_array(depth):
    """`depth` levels of arrays, innermost an array of one u8."""
    inner = u32(0) + u64(1) + b"\x07"
    for _ in range(depth - 1):
        inner = u32(9) + u64(1) + inner
    return inner


def make_bad():
    BAD.mkdir(parents=True, exist_ok=True)
    for f in BAD.glob("*.gguf"):
        f.unlink()
    good = build([NAME_KV], [tinfo("w", [8])], F32x8)
    cases = []  # (name, bytes, code, substring)

    def add(name, data, code, sub):
        cases.append((name, data, code, sub))

    add("empty_file", b"", "kCorruptFile", "need 4 bytes at offset 0 for magic, file has 0")
    add("bad_magic", b"GGUX" + good[4:], "kCorruptFile", "bad magic 0x58554747 (expected 'GGUF')")
    add("version_1", build([NAME_KV], [tinfo("w", [8])], F32x8, version=1), "kUnsupported",
        "GGUF version 1 is not supported (2 and 3 are)")
    add("version_99", build([NAME_KV], [tinfo("w", [8])], F32x8, version=99), "kUnsupported",
        "GGUF version 99 is not supported (2 and 3 are)")
    add("version_big_endian", build([NAME_KV], [tinfo("w", [8])], F32x8, version=0x03000000),
        "kUnsupported", "big-endian")
    add("truncated_header", good[:12], "kCorruptFile",
        "truncated file: need 8 bytes at offset 8 for tensor count, file has 12")
    kv_end = 24 + len(NAME_KV)
    add("truncated_kv", good[:kv_end - 2], "kCorruptFile",
        f"need 3 bytes at offset {kv_end - 3} for value of key 'general.name', file has {kv_end - 2}")
    add("truncated_kv_key", build([NAME_KV, kv("x", 4, u32(1))], [])[:kv_end + 4], "kCorruptFile",
        f"need 8 bytes at offset {kv_end} for key #1, file has {kv_end + 4}")
    add("truncated_tensor_infos", good[:kv_end + 16], "kCorruptFile",
        f"need at least 1 x 32 bytes at offset {kv_end} for tensor infos, file has {kv_end + 16}")
    long_name = "a" * 40  # makes the first info long enough to pass the up-front size check
    two = build([NAME_KV], [tinfo(long_name, [8]), tinfo("w", [8], offset=32)], bytes(64))
    first_info = 8 + len(long_name) + 4 + 8 + 4 + 8
    add("truncated_tensor_info", two[:kv_end + first_info + 8 + 1 + 4 + 3], "kCorruptFile",
        f"need 8 bytes at offset {kv_end + first_info + 13} for shape of tensor 'w', "
        f"file has {kv_end + first_info + 16}")
    add("truncated_data", good[:-10], "kCorruptFile",
        f"tensor 'w' data [{len(good) - 32}, {len(good)}) is outside the file (size {len(good) - 10})")
    add("tensor_out_of_bounds", build([NAME_KV], [tinfo("w", [8], offset=1 << 20)], F32x8),
        "kCorruptFile", "tensor 'w' data [")
    add("tensor_offset_overflow", build([NAME_KV], [tinfo("w", [8], offset=2**64 - 32)], F32x8),
        "kCorruptFile", "is outside the file")
    add("tensors_overlap", build([NAME_KV], [tinfo("a", [16]), tinfo("b", [8], offset=32)], bytes(64)),
        "kCorruptFile", "tensors 'a' and 'b' overlap")
    add("tensors_same_offset", build([NAME_KV], [tinfo("a", [8]), tinfo("b", [8])], bytes(32)),
        "kCorruptFile", "overlap")
    add("duplicate_tensor", build([NAME_KV], [tinfo("w", [8]), tinfo("w", [8], offset=32)], bytes(64)),
        "kCorruptFile", "duplicate tensor 'w'")
    add("duplicate_key", build([NAME_KV, NAME_KV], [tinfo("w", [8])], F32x8), "kCorruptFile",
        "duplicate key 'general.name'")
    add("unknown_tensor_type", build([NAME_KV], [tinfo("blk.0.attn_q.weight", [8], ttype=99)], F32x8),
        "kUnsupported", "tensor 'blk.0.attn_q.weight' has unknown type id 99")
    add("unknown_tensor_type_4", build([NAME_KV], [tinfo("w", [32], ttype=4)], bytes(32)),
        "kUnsupported", "unknown type id 4")
    add("absurd_n_tensors", build([NAME_KV], [], n_tensors=10**12), "kCorruptFile",
        "n_tensors 1000000000000 is absurd (limit 1048576)")
    add("absurd_n_kv", build([], [], n_kv=2**63), "kCorruptFile",
        f"n_kv {2**63} is absurd (limit 1048576)")
    add("n_kv_exceeds_file", build([NAME_KV], [], n_kv=100000), "kCorruptFile",
        "need at least 100000 x 13 bytes at offset 24 for key/value pairs")
    add("n_tensors_exceeds_file", build([NAME_KV], [], n_tensors=5000), "kCorruptFile",
        "need at least 5000 x 32 bytes")
    add("absurd_string_length", good[:24] + u64(2**40) + good[32:], "kCorruptFile",
        "string length 1099511627776 for key #0 is absurd (limit 1073741824)")
    add("absurd_string_value_length", build([kv("k", 8, u64(2**62) + b"abc")]), "kCorruptFile",
        "string length 4611686018427387904 for value of key 'k' is absurd")
    add("truncated_string_value", build([kv("k", 8, u64(100) + b"abc")]), "kCorruptFile",
        "need 100 bytes at offset 45 for value of key 'k'")
    add("absurd_tensor_name_length", build([NAME_KV], [u64(2**41) + b"w"]), "kCorruptFile",
        "for name of tensor #0 is absurd")
    add("absurd_array_length", build([kv("a", 9, u32(4) + u64(2**40) + u32(1))]), "kCorruptFile",
        "array length 1099511627776 of key 'a' is absurd (limit 1073741824)")
    add("array_length_exceeds_file", build([kv("a", 9, u32(8) + u64(1000000) + s("x"))]), "kCorruptFile",
        "need at least 1000000 x 8 bytes")
    add("numeric_array_exceeds_file", build([kv("a", 9, u32(12) + u64(1000) + u64(1))]), "kCorruptFile",
        "need 8000 bytes at offset")
    add("absurd_dims", build([NAME_KV], [tinfo("w", [2**50])], F32x8), "kCorruptFile",
        f"tensor 'w' has ne[0] = {2**50}, which is absurd")
    add("too_many_dims", build([NAME_KV], [tinfo("w", [1, 1, 1, 1, 8])], F32x8), "kCorruptFile",
        "tensor 'w' has n_dims 5 (must be 1..4)")
    add("zero_dims", build([NAME_KV], [tinfo("w", [])], F32x8), "kCorruptFile",
        "tensor 'w' has n_dims 0")
    add("zero_dim", build([NAME_KV], [tinfo("w", [8, 0])], F32x8), "kCorruptFile",
        "tensor 'w' has ne[1] = 0")
    add("element_count_overflow", build([NAME_KV], [tinfo("w", [2**40, 2**40])], F32x8), "kCorruptFile",
        "has too many elements")
    add("byte_count_overflow", build([NAME_KV], [tinfo("w", [2**31, 2**31])], F32x8), "kCorruptFile",
        "is too large in bytes")
    add("ne0_not_block_multiple", build([NAME_KV], [tinfo("w", [33], ttype=8)], bytes(64)), "kCorruptFile",
        "tensor 'w' has ne[0] = 33, not a multiple of the q8_0 block size 32")
    add("misaligned_offset", build([NAME_KV], [tinfo("a", [8]), tinfo("b", [8], offset=48)], bytes(96)),
        "kCorruptFile", "tensor 'b' offset 48 is not a multiple of the alignment 32")
    add("bad_alignment_value", build([kv("general.alignment", 4, u32(48))], [tinfo("w", [8])], F32x8),
        "kCorruptFile", "general.alignment 48 is not a nonzero power of two")
    add("zero_alignment", build([kv("general.alignment", 4, u32(0))], [tinfo("w", [8])], F32x8),
        "kCorruptFile", "general.alignment 0 is not a nonzero power of two")
    add("alignment_wrong_type", build([kv("general.alignment", 5, struct.pack("<i", 64))], [tinfo("w", [8])],
                                      F32x8, alignment=64), "kCorruptFile",
        "general.alignment has type i32, expected u32")
    add("misaligned_for_custom_alignment",
        build([kv("general.alignment", 4, u32(64))], [tinfo("a", [8]), tinfo("b", [8], offset=32)],
              bytes(96), alignment=64),
        "kCorruptFile", "tensor 'b' offset 32 is not a multiple of the alignment 64")
    add("deeply_nested_array", build([kv("deep", 9, nested_array(9))]), "kCorruptFile",
        "key 'deep' nests arrays deeper than 8 levels")
    add("unknown_value_type", build([kv("x", 13, u32(0))]), "kCorruptFile",
        "key 'x' has unknown value type 13")
    add("unknown_array_elem_type", build([kv("x", 9, u32(13) + u64(1) + u32(0))]), "kCorruptFile",
        "key 'x' is an array of unknown value type 13")
    add("invalid_bool", build([kv("b", 7, b"\x02")]), "kCorruptFile",
        "key 'b' has bool value 2 (expected 0 or 1)")
    add("invalid_bool_array", build([kv("b", 9, u32(7) + u64(3) + b"\x01\x00\xff")]), "kCorruptFile",
        "key 'b' has bool value 255 (expected 0 or 1)")

    lines = ["# file<TAB>StatusCode<TAB>substring of the message (tests/gguf_test.cpp checks each).",
             "# Generated by tools/make_gguf_fixtures.py."]
    for name, data, code, sub in cases:
        assert len(data) < 4096, name
        (BAD / f"{name}.gguf").write_bytes(data)
        lines.append(f"{name}.gguf\t{code}\t{sub}")
    (BAD / "expected.txt").write_text("\n".join(lines) + "\n")
    # The nested array at the depth limit must be accepted: it lives with the good files.
    (OUT / "good_nested_depth8.gguf").write_bytes(build([kv("deep", 9, nested_array(8))]))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    make_all_types()
    make_llama_like(3, "good_v3_llama.gguf")
    make_llama_like(2, "good_v2_llama.gguf")
    make_writer_reference()
    make_bad()
    print(f"wrote fixtures to {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())

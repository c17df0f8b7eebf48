#!/usr/bin/env python3
"""Reference token ids for the multimodal prompt tests (tests/data/vision/gemma3_image_tokens.json).

Reads the vocabulary of models/gemma-3-270m-q4_k_m.gguf with the `gguf` package (not omnirt's
reader) and writes the ids of Gemma 3's image wrap tokens and of BOS, which
tests/multimodal_test.cpp compares with what omnirt's prompt builder puts around an image.

    python3 tools/make_multimodal_fixtures.py [models/gemma-3-270m-q4_k_m.gguf]
"""
import json
import pathlib
import sys

from gguf import GGUFReader

ROOT = pathlib.Path(__file__).resolve().parent.parent


def field_value(reader, key):
    f = reader.fields[key]
    return f.parts[f.data[0]].tolist()[0]


def main():
    path = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "models/gemma-3-270m-q4_k_m.gguf"
    reader = GGUFReader(str(path))
    tokens = reader.fields["tokenizer.ggml.tokens"]
    pieces = [bytes(tokens.parts[i]).decode("utf-8") for i in tokens.data]
    out = {
        "model": path.name,
        "n_vocab": len(pieces),
        "start_of_image": pieces.index("<start_of_image>"),
        "end_of_image": pieces.index("<end_of_image>"),
        "bos": int(field_value(reader, "tokenizer.ggml.bos_token_id")),
    }
    dst = ROOT / "tests/data/vision/gemma3_image_tokens.json"
    dst.write_text(json.dumps(out, indent=2) + "\n")
    print(dst, out)


if __name__ == "__main__":
    main()

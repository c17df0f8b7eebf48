#!/usr/bin/env python3
"""Builds the tokenizer test fixtures under tests/data/tokenizer/.

Independent references (not omnirt code):
  - sentencepiece: a small BPE model with byte_fallback, exported to spm.gguf; reference = sp.encode.
  - tokenizers: three small byte-level BPEs (GPT-2 regex, Llama-3 regex, Qwen2 regex) exported to
    gpt2.gguf / llama3.gguf / qwen2.gguf; reference = Tokenizer.encode.
  - transformers: the real Gemma 3 270M vocabulary read from models/gemma-3-270m-q4_k_m.gguf
    (skipped with a message when that file is absent); reference = the fast tokenizer's encode.
Writes vectors.json: per tokenizer, its GGUF path (relative to the repo root) and a list of
{text, parse_special, ids} with ids WITHOUT BOS/EOS.

Usage: python3 tools/make_tokenizer_fixtures.py   (needs sentencepiece, tokenizers, transformers, gguf)
"""
import json
import os
import random
import sys
import tempfile

import gguf
import sentencepiece as spm
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "tokenizer")
GEMMA = os.path.join(ROOT, "models", "gemma-3-270m-q4_k_m.gguf")

GPT2_REGEX = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_REGEX = (r"""(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|"""
                r"""\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN2_REGEX = (r"""(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|"""
               r"""\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")

# ---- training corpus: deterministic mix of English, code and other scripts ------------------
SEEDS = [
    "The quick brown fox jumps over the lazy dog while the cat watches from the window.",
    "In 2024, researchers measured 3.14159 radians and 2,718 samples at 24 kHz.",
    "She said: \"I'm sure they've gone; we'll see if it's true, don't you think?\"",
    "Café, naïve, façade, déjà vu, Ångström, São Paulo, Øresund, Zürich, crème brûlée.",
    "你好，世界！今天天气很好，我们去公园散步吧。日本語のテキストも少し含めます。",
    "한국어 문장입니다. 안녕하세요, 만나서 반갑습니다.",
    "مرحبا بالعالم، هذا نص عربي قصير للتجربة.",
    "नमस्ते दुनिया, यह हिंदी का एक छोटा सा वाक्य है।",
    "Привет, мир! Это короткий русский текст для проверки.",
    "Γειά σου κόσμε, αυτό είναι ελληνικό κείμενο.",
    "Emoji: 😀 😃 👍 👍🏽 ❤️ 🍕 🚀 👨‍👩‍👧 🏳️‍🌈",
    "def add(a, b):\n    return a + b\n\nfor i in range(10):\n    print(add(i, i * 2))\n",
    "#include <vector>\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\tfor (int x : v) sum += x;\n\treturn 0;\n}\n",
    "if (x != nullptr && y >= 0) { return x->value[y]; } else { throw std::runtime_error(\"bad\"); }",
    "SELECT name, COUNT(*) FROM users WHERE age > 30 GROUP BY name ORDER BY 2 DESC;",
    "<html><body><div class=\"main\">Hello</div></body></html>",
    "    indented line\n\t\ttabbed line\n\n\nthree newlines   and spaces   \n",
]
WORDS = ("time person year way day thing man world life hand part child eye woman place work week case "
         "point government company number group problem fact be have do say get make go know take see "
         "come think look want give use find tell ask seem feel try leave call good new first last long "
         "great little own other old right big high different small large next early young important "
         "model token layer tensor kernel cache memory thread stream audio vision speech decode encode").split()


def corpus(seed=1234, n_chars=300_000):
    rng = random.Random(seed)
    parts = []
    total = 0
    while total < n_chars:
        r = rng.random()
        if r < 0.45:
            s = " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 20)))
            s = s[0].upper() + s[1:] + rng.choice([".", "!", "?", ",", ";"]) + rng.choice([" ", "\n", "  "])
        elif r < 0.55:
            s = " ".join(str(rng.randint(0, 10 ** rng.randint(1, 9))) for _ in range(rng.randint(1, 6))) + "\n"
        else:
            s = rng.choice(SEEDS) + rng.choice([" ", "\n", "\n\n", "\t"])
        parts.append(s)
        total += len(s)
    return "".join(parts)


# ---- test inputs ------------------------------------------------------------------------------
LONG_PARAGRAPH = (
    "Tokenizers turn text into integers. A SentencePiece model starts from single characters and "
    "repeatedly merges the adjacent pair whose concatenation scores best, while a byte-level BPE "
    "first splits the text with a regular expression, maps every byte to a printable character and "
    "then applies merges in the order they were learned. Both must agree, token for token, with the "
    "reference implementations; otherwise a model sees inputs it was never trained on and quietly "
    "degrades. This paragraph is long on purpose: it mixes punctuation (commas, semicolons; colons: "
    "and dashes — like this), numbers such as 1,234,567.89 and 2025-01-31, quotes \"like these\", "
    "contractions it's, we're, they'll, and a little Unicode: café, 東京, Ελλάδα, 🚀.")

COMMON_TEXTS = [
    "", "Hello, world!", "The quick brown fox jumps over the lazy dog.", "hello", "Hello",
    "I'm sure they've gone; we'll see if it's true, DON'T you think? You'RE right.",
    "Café déjà vu — naïve façade, Ångström, São Paulo, Øresund, crème brûlée.",
    "你好，世界！日本語のテキストです。한국어 문장입니다.", "漢字", "龘靐齉",
    "مرحبا بالعالم، هذا نص عربي.", "नमस्ते दुनिया, यह हिंदी पाठ है।",
    "Привет, мир!", "Γειά σου κόσμε",
    "I ❤️ 🍕! 👍 👍🏽 👍🏿 👨‍👩‍👧‍👦 🏳️‍🌈 😀😃🤖🦀", "🫠🫶🏼",
    " ", "  ", "    ", "   leading spaces", "trailing spaces   ", "a  b   c    d     e",
    "tab\tsep\t\tdouble\t", "line1\nline2\n\nline4\n", "\n", "\n\n\n", " \t \n mixed \r\n end ",
    "\r\n\r\n", " x", "x ", "  \n  \n",
    "0", "1234567890", "3.14159 and 2,718,281,828 and 1e-10", "year 2024: 12345678901234567890",
    "def f(x):\n    if x > 0:\n        return x * 2\n    return -x\n",
    "#include <vector>\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\treturn v.size();\n}\n",
    "<html><body><h1>Title</h1></body></html>",
    "x=42; y = x**2 // 7; s = 'it''s'",
    LONG_PARAGRAPH,
]


def random_texts(text, n=40, seed=7):
    """Slices of the training corpus plus random character soups: broad coverage of merge order."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a = rng.randrange(0, len(text) - 300)
        out.append(text[a:a + rng.randint(5, 300)])
    alphabet = list("aeiou xyzAEZ019 .,;:'\"\t\n-_()[]{}<>/\\é漢字😀👍🏽ßøءअ\u200d\r") + ["  ", "\n\n", "'s", "'LL"]
    for _ in range(n // 2):
        out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60))))
    out.append(" " * 40 + "x" + "\t" * 33 + "y" + "\n" * 35)
    return out


def special_texts(specials):
    out = []
    if specials:
        out.append("".join(specials))
        out.append(f"{specials[0]}user\nhi there{specials[-1]}\n")
        out.append(f"before {specials[0]} middle {specials[-1]}after")
        out.append(f"  {specials[0]}  x")
    return out


# ---- GGUF export ------------------------------------------------------------------------------
def write_gguf(path, arch, model, pre, tokens, types, scores=None, merges=None, bos=None, eos=None,
               unk=None, add_bos=False, add_space_prefix=None, chat_template=None, extra=None):
    w = gguf.GGUFWriter(path, arch)
    w.add_tokenizer_model(model)
    w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if scores is not None:
        w.add_token_scores(scores)
    if merges is not None:
        w.add_token_merges(merges)
    if bos is not None:
        w.add_bos_token_id(bos)
    if eos is not None:
        w.add_eos_token_id(eos)
    if unk is not None:
        w.add_unk_token_id(unk)
    w.add_add_bos_token(add_bos)
    if add_space_prefix is not None:
        w.add_add_space_prefix(add_space_prefix)
    if chat_template is not None:
        w.add_chat_template(chat_template)
    for k, v in (extra or {}).items():
        w.add_uint32(k, v)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    size = os.path.getsize(path)
    assert size < 300_000, f"{path} is {size} bytes"
    print(f"wrote {path} ({size} bytes, {len(tokens)} tokens)")


def build_spm(text, tmp):
    corpus_path = os.path.join(tmp, "corpus.txt")
    with open(corpus_path, "w", encoding="utf-8") as f:
        f.write(text)
    prefix = os.path.join(tmp, "spm")
    spm.SentencePieceTrainer.train(
        input=corpus_path, model_prefix=prefix, model_type="bpe", vocab_size=2000,
        byte_fallback=True, character_coverage=0.9995, normalization_rule_name="identity",
        remove_extra_whitespaces=False, add_dummy_prefix=True, allow_whitespace_only_pieces=True,
        split_digits=False, max_sentence_length=100000, control_symbols=["<start_of_turn>", "<end_of_turn>"],
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=2, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=prefix + ".model")
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        elif sp.is_unused(i):
            types.append(5)
        else:
            types.append(1)
    write_gguf(os.path.join(OUT, "spm.gguf"), "llama", "llama", "default", tokens, types, scores=scores,
               bos=1, eos=2, unk=0, add_bos=True, add_space_prefix=True)
    # sentencepiece treats control-symbol text as plain text: only parse_special=false is comparable.
    vectors = [{"text": s, "parse_special": False, "ids": sp.encode(s)}
               for s in COMMON_TEXTS + random_texts(text) + special_texts(["<start_of_turn>", "<end_of_turn>"])]
    return {"gguf": "tests/data/tokenizer/spm.gguf", "vectors": vectors}


def build_bpe(name, regex, arch, pre, text, specials, user_defined, ignore_merges):
    tok = Tokenizer(models.BPE())
    if regex is None:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=3000, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([text[i:i + 2000] for i in range(0, len(text), 2000)], trainer)
    tok.add_tokens(user_defined)
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = ignore_merges
    tok = Tokenizer.from_str(json.dumps(j))
    vocab = tok.get_vocab(with_added_tokens=True)
    n = max(vocab.values()) + 1
    tokens = [None] * n
    for piece, i in vocab.items():
        tokens[i] = piece
    assert all(t is not None for t in tokens)
    types = [3 if t in specials else 4 if t in user_defined else 1 for t in tokens]
    merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    eos = vocab[specials[0]]
    write_gguf(os.path.join(OUT, f"{name}.gguf"), arch, "gpt2", pre, tokens, types, merges=merges,
               bos=eos, eos=eos, add_bos=False)

    def enc(s, parse_special):
        tok.encode_special_tokens = not parse_special
        return tok.encode(s, add_special_tokens=False).ids
    vectors = [{"text": s, "parse_special": False, "ids": enc(s, False)} for s in COMMON_TEXTS + random_texts(text)]
    for s in special_texts(specials) + special_texts(user_defined):
        for ps in (False, True):
            vectors.append({"text": s, "parse_special": ps, "ids": enc(s, ps)})
    return {"gguf": f"tests/data/tokenizer/{name}.gguf", "vectors": vectors}


def build_gemma(text):
    if not os.path.exists(GEMMA):
        print(f"skipping gemma3 vectors: {GEMMA} not found", file=sys.stderr)
        return None
    from transformers import AutoTokenizer
    t = AutoTokenizer.from_pretrained(os.path.dirname(GEMMA), gguf_file=os.path.basename(GEMMA))
    specials = ["<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<unused7>"]
    vectors = []
    # HF's Gemma tokenizer splits runs of more than 16 spaces differently from SentencePiece and
    # llama.cpp (which take the longest user-defined space piece); those inputs are left out here
    # and checked by hand in tokenizer_test.cpp.
    for s in [x for x in COMMON_TEXTS + random_texts(text) if " " * 17 not in x]:
        vectors.append({"text": s, "parse_special": True, "ids": t.encode(s, add_special_tokens=False)})
    for s in special_texts(specials) + special_texts(["<h1>", "\n\n", "[multimodal]"]):
        for ps in (False, True):
            ids = t.encode(s, add_special_tokens=False, split_special_tokens=not ps)
            vectors.append({"text": s, "parse_special": ps, "ids": ids})
    bos_ids = t.encode("Hello world")  # with the post-processor's BOS
    entry = {"gguf": "models/gemma-3-270m-q4_k_m.gguf", "vectors": vectors,
             "with_bos": {"text": "Hello world", "ids": bos_ids}}
    if t.chat_template:
        msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "2+2?"}]
        entry["chat"] = {"messages": msgs,
                         "rendered": t.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)}
    return entry


def main():
    os.makedirs(OUT, exist_ok=True)
    text = corpus()
    out = {"tokenizers": {}}
    with tempfile.TemporaryDirectory() as tmp:
        out["tokenizers"]["spm"] = build_spm(text, tmp)
    out["tokenizers"]["gpt2"] = build_bpe("gpt2", None, "gpt2", "gpt2", text,
                                          ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], ["<tool>"], False)
    out["tokenizers"]["llama3"] = build_bpe(
        "llama3", LLAMA3_REGEX, "llama", "llama-bpe", text,
        ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], ["<tool>"], True)
    out["tokenizers"]["qwen2"] = build_bpe("qwen2", QWEN2_REGEX, "qwen2", "qwen2", text,
                                           ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], ["<tool>"], False)
    gemma = build_gemma(text)
    if gemma is not None:
        out["tokenizers"]["gemma3"] = gemma
    with open(os.path.join(OUT, "vectors.json"), "w", encoding="ascii") as f:
        json.dump(out, f, indent=1, ensure_ascii=True)
        f.write("\n")
    print("wrote", os.path.join(OUT, "vectors.json"))


if __name__ == "__main__":
    main()

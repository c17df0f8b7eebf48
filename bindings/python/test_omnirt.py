"""Tests of bindings/python/omnirt.py on a tiny synthetic gemma3 model made by the CLI.
Expected ids follow GPT-2's byte-level order ('!'..'~' = 0..93, ' ' = 220, BOS = 256).
Run: OMNIRT_LIB=build/lib/libomnirt.so OMNIRT_CLI=build/bin/omnirt python3 bindings/python/test_omnirt.py
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import omnirt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent.parent
CLI = os.environ.get("OMNIRT_CLI", str(ROOT / "build" / "bin" / "omnirt"))


def main():
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "tiny.gguf")
        subprocess.run([CLI, "model", "create", "--arch", "gemma3", "--preset", "tiny", "--seed",
                        "7", "--out", path], check=True, capture_output=True)
        model = omnirt.Model(path)
        engine = omnirt.Engine(n_threads=1)

        def check(name, cond):
            nonlocal passed, failed
            if cond:
                passed += 1
            else:
                failed += 1
                print(f"FAILED: {name}", file=sys.stderr)

        check("arch", model.arch == "gemma3" and model.n_vocab == 512 and model.is_synthetic)
        check("tokenize", model.tokenize("hi") == [256, 71, 72])
        check("tokenize special", model.tokenize("<end_of_turn>", add_bos=False, special=True) == [259])
        check("detokenize", model.detokenize([71, 72, 220, 71]) == "hi h")
        try:
            omnirt.Model(str(Path(tmp) / "missing.gguf"))
            check("missing file raises", False)
        except omnirt.OmniError as e:
            check("missing file raises NOT_FOUND", e.status == omnirt.ERR_NOT_FOUND)

        session = omnirt.Session(engine, model, n_ctx=64, temperature=0.0)
        try:
            session.generate(4)
            check("generate before input raises", False)
        except omnirt.OmniError as e:
            check("generate before input is WRONG_STATE", e.status == omnirt.ERR_WRONG_STATE)
        session.append_text("hey")
        logits = session.logits()
        expected_first = max(range(len(logits)), key=logits.__getitem__)
        seen = []
        text, tokens = session.generate(5, on_piece=lambda tok, piece: seen.append(tok) and False)
        check("greedy first token is the argmax", tokens[:1] == [expected_first])
        check("callback saw every token", [t for t in seen if t >= 0] == tokens)
        check("history", session.n_tokens == 4 + len(tokens))
        _, tokens = session.generate(10, on_piece=lambda tok, piece: True)
        check("callback stops", len(tokens) == 1 and session.stop_reason == "callback")
        session.reset()
        session.append_chat("user", "hi")
        check("chat prompt", session.n_tokens == 1 + 1 + 5 + 2 + 1 + 1 + 1 + 6)
        try:
            session.append_tokens([1, 9999])
            check("bad token raises", False)
        except omnirt.OmniError as e:
            check("bad token is OUT_OF_RANGE", e.status == omnirt.ERR_OUT_OF_RANGE and "9999" in str(e))
        session.close()
        engine.close()
        model.close()
    print(f"python: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

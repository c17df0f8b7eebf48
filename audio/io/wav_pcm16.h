// 16 kHz 16-bit PCM WAV without FFmpeg: the one format omnirt reads and writes itself, for
// builds without FFmpeg (the CLIs' fallback, the gpu-check preset's bench clip). Compiled in
// every build. Anything FFmpeg can read belongs to decode_file (decode.h), not here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/core/status.h"

namespace omni::audio {

// The samples of a RIFF/WAVE file's data chunk (16-bit PCM, 16000 Hz, any channel count;
// channels averaged; s16 / 32768, so in [-1, 1)), from `size` bytes at `bytes`. `name` names the
// file in messages. `why` (may be empty) says why only this format is read, appended to the
// kUnsupported messages as ", and <why>" (the CLIs: "omnirt was built without FFmpeg").
//   kUnsupported "'NAME' is not a WAV file": under 12 bytes or no RIFF....WAVE header.
//   kUnsupported "'NAME': only 16 kHz 16-bit PCM WAV is read (format T, B bits, C channels, R Hz)":
//     the fmt chunk before the data chunk says otherwise (or there is none: format 0).
//   kCorruptFile "'NAME': the chunk at byte N runs past the end": a chunk longer than the bytes.
//   kCorruptFile "'NAME': the data chunk holds no samples (L bytes, C channels)".
//   kCorruptFile "'NAME' has no data chunk".
// Chunks other than "fmt " and "data" are skipped; the first data chunk is the audio.
StatusOr<std::vector<float>> parse_wav_pcm16(const uint8_t* bytes, size_t size, const std::string& name,
                                             std::string_view why = {});

// parse_wav_pcm16 of the file at `path` (named by `path`); kNotFound "cannot open 'PATH'".
StatusOr<std::vector<float>> read_wav_pcm16(const std::string& path, std::string_view why = {});

// Writes mono `pcm` (n samples at `sample_rate` Hz) as a 16-bit PCM WAV: each sample clipped to
// [-1, 1], times 32767, rounded to nearest. kInvalidArgument for a rate <= 0, null pcm with n > 0
// or more samples than a WAV's 32-bit sizes hold; kIoError "cannot create 'PATH'" /
// "writing 'PATH' failed".
Status write_wav_pcm16(const std::string& path, const float* pcm, size_t n, int sample_rate);

}  // namespace omni::audio

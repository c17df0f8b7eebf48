// encode_file over FFmpeg: mono float32 -> (libswresample: sample format, rate) -> encoder
// (pcm_s16le, flac, libopus) -> muxer (wav, flac, ogg), chosen by the file extension.
#include <algorithm>
#include <cstring>
#include <vector>

#include "audio/io/decode.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libswresample/swresample.h>
}

namespace omni::audio {
namespace {

std::string av_error_text(int err) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {};
  av_strerror(err, buf, sizeof(buf));
  return buf;
}

struct Target {
  const char* muxer;
  AVCodecID codec;
  const char* encoder_name;  // preferred encoder, or nullptr for the default one
};

bool ends_with(const std::string& s, const char* suffix) {
  size_t n = std::strlen(suffix);
  if (s.size() < n) return false;
  for (size_t i = 0; i < n; ++i) {
    char c = s[s.size() - n + i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != suffix[i]) return false;
  }
  return true;
}

bool opus_rate(int rate) {
  return rate == 8000 || rate == 12000 || rate == 16000 || rate == 24000 || rate == 48000;
}

// Owns everything encode_file allocates, so every early return frees it.
struct Encoder {
  std::string path;
  AVFormatContext* mux = nullptr;
  AVCodecContext* codec = nullptr;
  SwrContext* swr = nullptr;
  AVFrame* frame = nullptr;
  AVPacket* packet = nullptr;
  AVStream* stream = nullptr;
  bool file_open = false;

  ~Encoder() {
    swr_free(&swr);
    av_frame_free(&frame);
    av_packet_free(&packet);
    avcodec_free_context(&codec);
    if (mux) {
      if (file_open) avio_closep(&mux->pb);
      avformat_free_context(mux);
    }
  }

  Status fail(const char* what, int err) const {
    return io_error(fmt("'%s': %s: %s", path.c_str(), what, av_error_text(err).c_str()));
  }

  // Sends `f` (nullptr = flush) and writes every packet the encoder returns.
  Status send(AVFrame* f) {
    int err = avcodec_send_frame(codec, f);
    if (err < 0) return fail("encoding failed", err);
    while (true) {
      err = avcodec_receive_packet(codec, packet);
      if (err == AVERROR(EAGAIN) || err == AVERROR_EOF) return Status::Ok();
      if (err < 0) return fail("encoding failed", err);
      av_packet_rescale_ts(packet, codec->time_base, stream->time_base);
      packet->stream_index = stream->index;
      err = av_interleaved_write_frame(mux, packet);
      if (err < 0) return fail("write failed", err);
    }
  }
};

}  // namespace

Status encode_file(const std::string& path, const float* pcm, size_t n, int sample_rate) {
  OMNI_RETURN_IF_ERROR(check_sample_rate(sample_rate));
  if (n > 0 && !pcm) return invalid_argument("encode_file: null samples");
  OMNI_RETURN_IF_ERROR(check_finite(pcm, n, "encode_file:"));
  if (n > static_cast<size_t>(INT32_MAX)) {
    return invalid_argument(fmt("encode_file: %zu samples (at most %d)", n, INT32_MAX));
  }
  Target target{};
  if (ends_with(path, ".wav")) {
    target = {"wav", AV_CODEC_ID_PCM_S16LE, nullptr};
  } else if (ends_with(path, ".flac")) {
    target = {"flac", AV_CODEC_ID_FLAC, nullptr};
  } else if (ends_with(path, ".opus") || ends_with(path, ".ogg")) {
    target = {"ogg", AV_CODEC_ID_OPUS, "libopus"};
  } else {
    return invalid_argument(fmt("encode_file: '%s': extension not one of .wav .flac .opus .ogg",
                                path.c_str()));
  }
  const AVCodec* enc = target.encoder_name ? avcodec_find_encoder_by_name(target.encoder_name)
                                           : nullptr;
  if (!enc) enc = avcodec_find_encoder(target.codec);
  if (!enc) {
    return unsupported(fmt("encode_file: no %s encoder in this FFmpeg build",
                           avcodec_get_name(target.codec)));
  }
  Encoder e;
  e.path = path;
  int err = avformat_alloc_output_context2(&e.mux, nullptr, target.muxer, nullptr);
  if (err < 0 || !e.mux) return e.fail("no muxer", err);
  e.stream = avformat_new_stream(e.mux, nullptr);
  e.codec = avcodec_alloc_context3(enc);
  e.frame = av_frame_alloc();
  e.packet = av_packet_alloc();
  if (!e.stream || !e.codec || !e.frame || !e.packet) {
    return Status(StatusCode::kOutOfMemory, "encode_file: allocation failed");
  }
  int out_rate = sample_rate;
  if (target.codec == AV_CODEC_ID_OPUS && !opus_rate(sample_rate)) out_rate = 48000;
  // 16-bit where the encoder takes it (WAV/FLAC), float otherwise (Opus takes both).
  AVSampleFormat sample_fmt = AV_SAMPLE_FMT_S16;
  if (target.codec == AV_CODEC_ID_OPUS) sample_fmt = AV_SAMPLE_FMT_FLT;
  if (enc->sample_fmts) {
    bool found = false;
    for (const AVSampleFormat* f = enc->sample_fmts; *f != AV_SAMPLE_FMT_NONE; ++f) {
      found = found || *f == sample_fmt;
    }
    if (!found) sample_fmt = enc->sample_fmts[0];
  }
  e.codec->sample_fmt = sample_fmt;
  e.codec->sample_rate = out_rate;
  AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
  av_channel_layout_copy(&e.codec->ch_layout, &mono);
  e.codec->time_base = AVRational{1, out_rate};
  if (e.mux->oformat->flags & AVFMT_GLOBALHEADER) e.codec->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
  err = avcodec_open2(e.codec, enc, nullptr);
  if (err < 0) {
    return unsupported(fmt("encode_file: '%s': %s encoder refuses mono %d Hz: %s", path.c_str(),
                           enc->name, out_rate, av_error_text(err).c_str()));
  }
  err = avcodec_parameters_from_context(e.stream->codecpar, e.codec);
  if (err < 0) return e.fail("codec parameters", err);
  e.stream->time_base = e.codec->time_base;

  // Convert everything up front: [n_out] samples in the encoder's format at out_rate.
  err = swr_alloc_set_opts2(&e.swr, &mono, sample_fmt, out_rate, &mono, AV_SAMPLE_FMT_FLT,
                            sample_rate, 0, nullptr);
  if (err < 0 || swr_init(e.swr) < 0) return e.fail("resampler setup", err);
  const int bytes = av_get_bytes_per_sample(sample_fmt);
  std::vector<uint8_t> converted;
  size_t n_out = 0;
  auto convert = [&](const uint8_t* in, int count) -> Status {
    int cap = swr_get_out_samples(e.swr, count) + 16;
    converted.resize((n_out + static_cast<size_t>(cap)) * static_cast<size_t>(bytes));
    uint8_t* out = converted.data() + n_out * static_cast<size_t>(bytes);
    int got = swr_convert(e.swr, &out, cap, in ? &in : nullptr, count);
    if (got < 0) return e.fail("resampling", got);
    n_out += static_cast<size_t>(got);
    return Status::Ok();
  };
  OMNI_RETURN_IF_ERROR(convert(reinterpret_cast<const uint8_t*>(pcm), static_cast<int>(n)));
  while (true) {
    size_t before = n_out;
    OMNI_RETURN_IF_ERROR(convert(nullptr, 0));
    if (n_out == before) break;
  }

  err = avio_open(&e.mux->pb, ("file:" + path).c_str(), AVIO_FLAG_WRITE);
  if (err < 0) return e.fail("cannot create", err);
  e.file_open = true;
  err = avformat_write_header(e.mux, nullptr);
  if (err < 0) return e.fail("header", err);

  const bool any_size = e.codec->frame_size == 0 ||
                        (enc->capabilities & AV_CODEC_CAP_VARIABLE_FRAME_SIZE);
  const size_t frame_samples = any_size ? 4096 : static_cast<size_t>(e.codec->frame_size);
  const bool small_last = any_size || (enc->capabilities & AV_CODEC_CAP_SMALL_LAST_FRAME);
  for (size_t pos = 0; pos < n_out; pos += frame_samples) {
    size_t count = std::min(frame_samples, n_out - pos);
    size_t padded = (count < frame_samples && !small_last) ? frame_samples : count;
    e.frame->nb_samples = static_cast<int>(padded);
    e.frame->format = sample_fmt;
    e.frame->sample_rate = out_rate;
    av_channel_layout_copy(&e.frame->ch_layout, &mono);
    err = av_frame_get_buffer(e.frame, 0);
    if (err < 0) return e.fail("frame buffer", err);
    std::memcpy(e.frame->data[0], converted.data() + pos * static_cast<size_t>(bytes),
                count * static_cast<size_t>(bytes));
    if (padded > count) {
      std::memset(e.frame->data[0] + count * static_cast<size_t>(bytes), 0,
                  (padded - count) * static_cast<size_t>(bytes));
    }
    e.frame->pts = static_cast<int64_t>(pos);
    Status s = e.send(e.frame);
    av_frame_unref(e.frame);
    OMNI_RETURN_IF_ERROR(s);
  }
  OMNI_RETURN_IF_ERROR(e.send(nullptr));
  err = av_write_trailer(e.mux);
  if (err < 0) return e.fail("trailer", err);
  return Status::Ok();
}

}  // namespace omni::audio

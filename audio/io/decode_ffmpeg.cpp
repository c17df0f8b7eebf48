// StreamDecoder over FFmpeg: demux (libavformat) -> decode (libavcodec) -> average channels and
// resample to mono float32 (libswresample, a 1 x C matrix of 1/C), delivered in read() chunks.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "audio/io/decode.h"
#include "kernels/core/ffmpeg_log.h"
#include "kernels/core/ffmpeg_memory_io.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avstring.h>
#include <libavutil/channel_layout.h>
#include <libavutil/error.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>
}

namespace omni::audio {
namespace {

// av_strerror's text, plus what FFmpeg logged about it (the log is taken over in open_*).
std::string av_error_text(int err) { return ffmpeg::error_text(err) + ffmpeg::said(); }

constexpr int kMemoryIoBufferBytes = 16 * 1024;

// A regular file read front to back while another process appends to it (StreamDecoder::
// open_follow). At the current end, read() polls the size every poll_ms and reports the end
// only after idle_ms without growth. No seek callback: the demuxers read linearly (a WAV
// demuxer on a seekable source would seek to its data chunk's end, waiting for the whole file).
struct FollowSource {
  int fd = -1;
  FollowOptions options;
  int64_t pos = 0;              // bytes returned so far
  int64_t shrank_to = -1;       // >= 0: the file became this short (rewritten or truncated)
  int read_errno = 0;           // a failed read(2) / fstat(2)
  bool idle_end = false;        // reported the end after idle_ms without growth
  std::vector<uint8_t> head;    // the first kHeadBytes bytes, for wav_data_end
  static constexpr size_t kHeadBytes = 4096;

  ~FollowSource() {
    if (fd >= 0) ::close(fd);
  }

  static int read(void* opaque, uint8_t* buf, int buf_size) {
    auto* f = static_cast<FollowSource*>(opaque);
    // The end is final: FFmpeg reads again after an EOF (probing, refilling its buffer), and each
    // of those reads must not wait idle_ms once more.
    if (f->idle_end) return AVERROR_EOF;
    using Clock = std::chrono::steady_clock;
    const Clock::time_point wait_start = Clock::now();
    while (true) {
      const ssize_t n = ::read(f->fd, buf, static_cast<size_t>(buf_size));
      if (n > 0) {
        if (f->head.size() < kHeadBytes) {
          const size_t keep = std::min(static_cast<size_t>(n), kHeadBytes - f->head.size());
          f->head.insert(f->head.end(), buf, buf + keep);
        }
        f->pos += n;
        return static_cast<int>(n);
      }
      if (n < 0) {
        if (errno == EINTR) continue;
        f->read_errno = errno;
        return AVERROR(errno);
      }
      struct stat st {};
      if (::fstat(f->fd, &st) != 0) {
        f->read_errno = errno;
        return AVERROR(errno);
      }
      if (st.st_size < f->pos) {
        f->shrank_to = st.st_size;
        return AVERROR(EIO);
      }
      if (st.st_size > f->pos) continue;  // grew between read() and fstat()
      const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - wait_start);
      if (waited.count() >= f->options.idle_ms) {
        f->idle_end = true;
        return AVERROR_EOF;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(
          std::min<int64_t>(f->options.poll_ms, f->options.idle_ms - waited.count())));
    }
  }
};

}  // namespace

struct StreamDecoder::Impl {
  std::string name;  // for messages
  int out_rate = 0;
  ffmpeg::MemorySource memory;
  std::unique_ptr<FollowSource> follow;  // open_follow on a regular file
  AVIOContext* custom_io = nullptr;
  AVFormatContext* format = nullptr;
  AVCodecContext* codec = nullptr;
  SwrContext* swr = nullptr;
  AVPacket* packet = nullptr;
  AVFrame* frame = nullptr;
  int stream_index = -1;
  // What swr was configured for; a frame that differs (a chained Ogg, AAC switching to SBR)
  // makes us flush and rebuild it.
  int swr_in_rate = 0;
  int swr_in_format = -1;
  int swr_in_channels = 0;
  std::vector<float> pending;  // resampled samples not yet returned
  size_t pending_pos = 0;
  size_t produced = 0;  // samples resampled so far, for messages
  bool demux_done = false;   // av_read_frame hit the end; the decoder has been sent a flush
  bool decoder_done = false; // the decoder returned AVERROR_EOF; swr has been flushed
  std::string codec_name;

  bool input_opened = false;  // a path: open_only_the_input has opened it

  // AVFormatContext::io_open for a path: the url avformat_open_input was given, once, through
  // the local file and pipe protocols; any other open is refused. `s->opaque` = &input_opened.
  static int open_only_the_input(AVFormatContext* s, AVIOContext** pb, const char* url, int flags,
                                 AVDictionary** options) {
    auto* opened = static_cast<bool*>(s->opaque);
    if (*opened || (flags & AVIO_FLAG_WRITE) || !s->url || std::strcmp(url, s->url) != 0) {
      return AVERROR(EPERM);
    }
    *opened = true;
    AVDictionary* local = nullptr;
    AVDictionary** opts = options ? options : &local;
    av_dict_set(opts, "protocol_whitelist", "file,pipe,fd", 0);
    const int err = avio_open2(pb, url, flags, &s->interrupt_callback, opts);
    av_dict_free(&local);
    return err;
  }

  // The demuxer FFmpeg's probe picks for the input (nullptr when it cannot be told), to explain
  // a failed open: a regular file (followed or not) is read again from its start, bytes in
  // memory from theirs; a pipe or a FIFO cannot be.
  const AVInputFormat* probe_demuxer(const std::string& url) const {
    AVIOContext* pb = nullptr;
    struct stat st {};
    const std::string file = follow ? "file:" + name : url;
    ffmpeg::MemorySource again{memory.data, memory.size, 0};
    if (memory.data) {
      auto* buffer = static_cast<uint8_t*>(av_malloc(kMemoryIoBufferBytes));
      if (!buffer) return nullptr;
      pb = avio_alloc_context(buffer, kMemoryIoBufferBytes, 0, &again, &ffmpeg::MemorySource::read,
                              nullptr, &ffmpeg::MemorySource::seek);
      if (!pb) av_free(buffer);
    } else if (file.starts_with("file:") && ::stat(file.c_str() + 5, &st) == 0 &&
               S_ISREG(st.st_mode)) {
      AVDictionary* opts = nullptr;
      av_dict_set(&opts, "protocol_whitelist", "file", 0);
      if (avio_open2(&pb, file.c_str(), AVIO_FLAG_READ, nullptr, &opts) < 0) pb = nullptr;
      av_dict_free(&opts);
    }
    if (!pb) return nullptr;
    const AVInputFormat* demuxer = nullptr;
    if (av_probe_input_buffer2(pb, &demuxer, url.c_str(), nullptr, 0, 0) < 0) demuxer = nullptr;
    if (memory.data) {
      av_freep(&pb->buffer);
      avio_context_free(&pb);
    } else {
      avio_closep(&pb);
    }
    return demuxer;
  }

  // What a demuxer that names other inputs reads ("a concat list"), or nullptr.
  static const char* list_kind(const AVInputFormat* demuxer) {
    if (!demuxer) return nullptr;
    static constexpr struct { const char* demuxer; const char* what; } kLists[] = {
        {"concat", "a concat list"},      {"hls", "an HLS playlist"},
        {"dash", "a DASH manifest"},      {"imf", "an IMF composition playlist"},
    };
    for (const auto& l : kLists) {
      if (av_match_list(l.demuxer, demuxer->name, ',') > 0) return l.what;
    }
    return nullptr;
  }

  Status refuse_list(const AVInputFormat* demuxer) const {
    return unsupported(fmt("'%s' is %s (FFmpeg's '%s' demuxer), which names other files: only "
                           "the file given is read (decode the files it lists instead)",
                           name.c_str(), list_kind(demuxer), demuxer->name));
  }

  ~Impl() {
    swr_free(&swr);
    av_frame_free(&frame);
    av_packet_free(&packet);
    avcodec_free_context(&codec);
    avformat_close_input(&format);
    if (custom_io) {
      av_freep(&custom_io->buffer);
      avio_context_free(&custom_io);
    }
  }

  Status open_format(const std::string& url, AVIOContext* io) {
    format = avformat_alloc_context();
    if (!format) return Status(StatusCode::kOutOfMemory, "avformat_alloc_context failed");
    // The input is the only thing read: a demuxer that would open more (a concat list's files,
    // a playlist's segments, an image sequence's other pictures, a reference movie's) is
    // refused. Bytes in memory (or a followed file) come through `io` and nothing is opened; a
    // path is opened once, by open_only_the_input. Nested inputs (concat) copy the protocol
    // whitelist, not io_open: no protocol is on it.
    if (io) {
      format->pb = io;
      format->io_open = [](AVFormatContext*, AVIOContext**, const char*, int, AVDictionary**) {
        return AVERROR(EPERM);
      };
    } else {
      format->opaque = &input_opened;
      format->io_open = &open_only_the_input;
    }
    AVDictionary* opts = nullptr;
    av_dict_set(&opts, "protocol_whitelist", "none", 0);
    int err = avformat_open_input(&format, url.c_str(), nullptr, &opts);
    av_dict_free(&opts);
    if (err < 0) {  // avformat_open_input frees `format` on failure
      if (err == AVERROR(ENOENT)) return not_found(fmt("'%s': no such file", name.c_str()));
      const std::string why = av_error_text(err);  // before the probe logs anything of its own
      if (const AVInputFormat* d = probe_demuxer(url); list_kind(d)) return refuse_list(d);
      if (err == AVERROR_INVALIDDATA) {
        return corrupt_file(fmt("'%s': not a recognised audio/video container (%s)", name.c_str(),
                                why.c_str()));
      }
      if (err == AVERROR_EOF) {
        return corrupt_file(fmt("'%s': ends before its header does (empty or truncated)",
                                name.c_str()));
      }
      return io_error(fmt("'%s': cannot open: %s", name.c_str(), why.c_str()));
    }
    if (list_kind(format->iformat)) return refuse_list(format->iformat);
    // Pictures named by a pattern ("frame%03d.png") or by extension: no audio, and the first
    // packet would open the file again.
    if (std::strcmp(format->iformat->name, "image2") == 0) {
      return unsupported(fmt("'%s' (image2) has no audio stream", name.c_str()));
    }
    err = avformat_find_stream_info(format, nullptr);
    if (err < 0) {
      return corrupt_file(fmt("'%s': cannot read stream parameters: %s", name.c_str(),
                              av_error_text(err).c_str()));
    }
    const AVCodec* decoder = nullptr;
    stream_index = av_find_best_stream(format, AVMEDIA_TYPE_AUDIO, -1, -1, &decoder, 0);
    if (stream_index == AVERROR_STREAM_NOT_FOUND) {
      return unsupported(fmt("'%s' (%s) has no audio stream", name.c_str(),
                             format->iformat ? format->iformat->name : "?"));
    }
    if (stream_index < 0 || !decoder) {
      const AVStream* s = stream_index >= 0 ? format->streams[stream_index] : nullptr;
      const char* codec_id = s ? avcodec_get_name(s->codecpar->codec_id) : "?";
      return unsupported(fmt("'%s': no decoder in this FFmpeg build for audio codec '%s'",
                             name.c_str(), codec_id));
    }
    const AVCodecParameters* par = format->streams[stream_index]->codecpar;
    codec_name = decoder->name;
    if (par->ch_layout.nb_channels < 1 || par->ch_layout.nb_channels > kMaxChannels) {
      return corrupt_file(fmt("'%s': %d audio channels (1..%d supported)", name.c_str(),
                              par->ch_layout.nb_channels, kMaxChannels));
    }
    if (par->sample_rate < kMinSampleRate || par->sample_rate > kMaxSampleRate) {
      return corrupt_file(fmt("'%s': sample rate %d Hz (%d..%d supported)", name.c_str(),
                              par->sample_rate, kMinSampleRate, kMaxSampleRate));
    }
    // Only the chosen stream's packets matter; the demuxer may drop the others early.
    for (unsigned i = 0; i < format->nb_streams; ++i) {
      if (static_cast<int>(i) != stream_index) format->streams[i]->discard = AVDISCARD_ALL;
    }
    codec = avcodec_alloc_context3(decoder);
    if (!codec) return Status(StatusCode::kOutOfMemory, "avcodec_alloc_context3 failed");
    err = avcodec_parameters_to_context(codec, par);
    if (err >= 0) err = avcodec_open2(codec, decoder, nullptr);
    if (err < 0) {
      return unsupported(fmt("'%s': cannot open the %s decoder: %s", name.c_str(),
                             decoder->name, av_error_text(err).c_str()));
    }
    packet = av_packet_alloc();
    frame = av_frame_alloc();
    if (!packet || !frame) return Status(StatusCode::kOutOfMemory, "av_packet/frame_alloc failed");
    return Status::Ok();
  }

  Status configure_swr(const AVFrame* f) {
    int channels = f->ch_layout.nb_channels;
    if (channels < 1 || channels > kMaxChannels) {
      return corrupt_file(fmt("'%s': a frame with %d channels", name.c_str(), channels));
    }
    if (f->sample_rate < kMinSampleRate || f->sample_rate > kMaxSampleRate) {
      return corrupt_file(fmt("'%s': a frame at %d Hz", name.c_str(), f->sample_rate));
    }
    if (swr) OMNI_RETURN_IF_ERROR(drain_swr());
    swr_free(&swr);
    AVChannelLayout in_layout{};
    if (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC) {
      av_channel_layout_default(&in_layout, channels);
    } else {
      av_channel_layout_copy(&in_layout, &f->ch_layout);
    }
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    int err = swr_alloc_set_opts2(&swr, &mono, AV_SAMPLE_FMT_FLT, out_rate, &in_layout,
                                  static_cast<AVSampleFormat>(f->format), f->sample_rate, 0,
                                  nullptr);
    av_channel_layout_uninit(&in_layout);
    if (err < 0) {
      return unsupported(fmt("'%s': cannot convert %d-channel %s at %d Hz: %s", name.c_str(),
                             channels, av_get_sample_fmt_name(static_cast<AVSampleFormat>(f->format)),
                             f->sample_rate, av_error_text(err).c_str()));
    }
    // Mono = the plain mean of the channels (swr's default downmix weights by layout).
    std::vector<double> matrix(static_cast<size_t>(channels), 1.0 / channels);
    err = swr_set_matrix(swr, matrix.data(), channels);
    if (err >= 0) err = swr_init(swr);
    if (err < 0) {
      return internal_error(fmt("'%s': swr_init failed: %s", name.c_str(),
                                av_error_text(err).c_str()));
    }
    swr_in_rate = f->sample_rate;
    swr_in_format = f->format;
    swr_in_channels = channels;
    return Status::Ok();
  }

  // Appends swr output for `in_samples` input samples (nullptr in = flush) to pending.
  Status resample(const uint8_t** in, int in_samples) {
    int capacity = swr_get_out_samples(swr, in_samples);
    if (capacity < 0) return internal_error("swr_get_out_samples failed");
    capacity += 16;
    size_t old = pending.size();
    pending.resize(old + static_cast<size_t>(capacity));
    uint8_t* out = reinterpret_cast<uint8_t*>(pending.data() + old);
    int got = swr_convert(swr, &out, capacity, in, in_samples);
    if (got < 0) {
      pending.resize(old);
      return corrupt_file(fmt("'%s': resampling failed: %s", name.c_str(),
                              av_error_text(got).c_str()));
    }
    pending.resize(old + static_cast<size_t>(got));
    for (size_t i = old; i < pending.size(); ++i) {
      if (!std::isfinite(pending[i])) {
        return corrupt_file(fmt("'%s': decoded sample %zu (at %d Hz) is %s", name.c_str(),
                                produced + (i - old), out_rate,
                                std::isnan(pending[i]) ? "NaN" : "infinite"));
      }
    }
    produced += static_cast<size_t>(got);
    return Status::Ok();
  }

  Status drain_swr() {
    while (true) {
      size_t before = pending.size();
      OMNI_RETURN_IF_ERROR(resample(nullptr, 0));
      if (pending.size() == before) return Status::Ok();
    }
  }

  Status consume_frame() {
    if (!swr || frame->sample_rate != swr_in_rate || frame->format != swr_in_format ||
        frame->ch_layout.nb_channels != swr_in_channels) {
      OMNI_RETURN_IF_ERROR(configure_swr(frame));
    }
    Status s = resample(const_cast<const uint8_t**>(frame->extended_data), frame->nb_samples);
    av_frame_unref(frame);
    return s;
  }

  // A followed file that went quiet before the end its WAV header declared: the writer stopped.
  Status check_follow_end() const {
    if (!follow) return Status::Ok();
    OMNI_RETURN_IF_ERROR(follow_error());
    const int64_t end = wav_data_end(follow->head.data(), follow->head.size());
    if (end > follow->pos) {
      return corrupt_file(fmt("'%s' stopped growing at byte %lld (no growth for %d ms); its WAV "
                              "data chunk ends at byte %lld", name.c_str(),
                              static_cast<long long>(follow->pos), follow->options.idle_ms,
                              static_cast<long long>(end)));
    }
    return Status::Ok();
  }
  Status follow_error() const {
    if (follow->shrank_to >= 0) {
      return io_error(fmt("'%s' shrank to %lld bytes while being followed (read up to byte %lld): "
                          "rewritten or truncated", name.c_str(),
                          static_cast<long long>(follow->shrank_to), static_cast<long long>(follow->pos)));
    }
    if (follow->read_errno != 0) {
      return io_error(fmt("'%s': read failed at byte %lld: %s", name.c_str(),
                          static_cast<long long>(follow->pos), std::strerror(follow->read_errno)));
    }
    return Status::Ok();
  }

  double packet_seconds(const AVPacket* p) const {
    if (p->pts == AV_NOPTS_VALUE) return -1;
    return static_cast<double>(p->pts) * av_q2d(format->streams[stream_index]->time_base);
  }

  // Decodes until pending has samples or the stream has ended.
  Status fill() {
    while (pending_pos >= pending.size() && !decoder_done) {
      pending.clear();
      pending_pos = 0;
      int err = avcodec_receive_frame(codec, frame);
      if (err >= 0) {
        OMNI_RETURN_IF_ERROR(consume_frame());
        continue;
      }
      if (err == AVERROR_EOF) {
        decoder_done = true;
        if (swr) OMNI_RETURN_IF_ERROR(drain_swr());
        break;
      }
      if (err != AVERROR(EAGAIN)) {
        return corrupt_file(fmt("'%s': %s decoding failed: %s", name.c_str(), codec_name.c_str(),
                                av_error_text(err).c_str()));
      }
      if (demux_done) return internal_error("decoder wants input after the flush packet");
      err = av_read_frame(format, packet);
      if (err == AVERROR_EOF) {
        OMNI_RETURN_IF_ERROR(check_follow_end());
        demux_done = true;
        avcodec_send_packet(codec, nullptr);
        continue;
      }
      if (err < 0 && follow) OMNI_RETURN_IF_ERROR(follow_error());
      if (err < 0) {
        if (err == AVERROR_INVALIDDATA) {
          return corrupt_file(fmt("'%s': damaged container data: %s", name.c_str(),
                                  av_error_text(err).c_str()));
        }
        return io_error(fmt("'%s': read failed: %s", name.c_str(), av_error_text(err).c_str()));
      }
      if (packet->stream_index != stream_index) {
        av_packet_unref(packet);
        continue;
      }
      err = avcodec_send_packet(codec, packet);
      double at = packet_seconds(packet);
      av_packet_unref(packet);
      if (err < 0 && err != AVERROR(EAGAIN)) {
        return corrupt_file(fmt("'%s': %s packet at %.3f s does not decode: %s", name.c_str(),
                                codec_name.c_str(), at, av_error_text(err).c_str()));
      }
    }
    return Status::Ok();
  }
};

StreamDecoder::StreamDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StreamDecoder::~StreamDecoder() = default;

StatusOr<std::unique_ptr<StreamDecoder>> StreamDecoder::open(const std::string& path,
                                                             int sample_rate) {
  OMNI_RETURN_IF_ERROR(check_sample_rate(sample_rate));
  ffmpeg::take_over_log();
  auto impl = std::make_unique<Impl>();
  impl->out_rate = sample_rate;
  std::string url;
  if (path == "-") {
    impl->name = "<stdin>";
    url = "pipe:0";
  } else {
    impl->name = path;
    if (path.empty()) return invalid_argument("empty audio file path");
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT) return not_found(fmt("'%s': no such file", path.c_str()));
      return io_error(fmt("'%s': %s", path.c_str(), std::strerror(errno)));
    }
    if (S_ISDIR(st.st_mode)) return invalid_argument(fmt("'%s' is a directory", path.c_str()));
    if (S_ISREG(st.st_mode) && st.st_size == 0) {
      return corrupt_file(fmt("'%s' is empty (0 bytes)", path.c_str()));
    }
    url = "file:" + path;  // never parsed as "proto:rest" even when the name has a colon
  }
  OMNI_RETURN_IF_ERROR(impl->open_format(url, nullptr));
  return std::unique_ptr<StreamDecoder>(new StreamDecoder(std::move(impl)));
}

StatusOr<std::unique_ptr<StreamDecoder>> StreamDecoder::open_memory(const uint8_t* data,
                                                                    size_t size, int sample_rate,
                                                                    const std::string& name) {
  OMNI_RETURN_IF_ERROR(check_sample_rate(sample_rate));
  if (size == 0) return corrupt_file(fmt("'%s' is empty (0 bytes)", name.c_str()));
  if (!data) return invalid_argument("decode from memory: null data");
  ffmpeg::take_over_log();
  auto impl = std::make_unique<Impl>();
  impl->out_rate = sample_rate;
  impl->name = name;
  impl->memory = ffmpeg::MemorySource{data, size, 0};
  auto* buffer = static_cast<uint8_t*>(av_malloc(kMemoryIoBufferBytes));
  if (!buffer) return Status(StatusCode::kOutOfMemory, "av_malloc failed");
  impl->custom_io = avio_alloc_context(buffer, kMemoryIoBufferBytes, 0, &impl->memory,
                                       &ffmpeg::MemorySource::read, nullptr,
                                       &ffmpeg::MemorySource::seek);
  if (!impl->custom_io) {
    av_free(buffer);
    return Status(StatusCode::kOutOfMemory, "avio_alloc_context failed");
  }
  OMNI_RETURN_IF_ERROR(impl->open_format("", impl->custom_io));
  return std::unique_ptr<StreamDecoder>(new StreamDecoder(std::move(impl)));
}

StatusOr<std::unique_ptr<StreamDecoder>> StreamDecoder::open_follow(const std::string& path,
                                                                    int sample_rate,
                                                                    const FollowOptions& options) {
  OMNI_RETURN_IF_ERROR(check_sample_rate(sample_rate));
  OMNI_RETURN_IF_ERROR(check_follow_options(options));
  if (path.empty()) return invalid_argument("empty audio file path");
  struct stat st {};
  if (path != "-" && ::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return not_found(fmt("'%s': no such file", path.c_str()));
    return io_error(fmt("'%s': %s", path.c_str(), std::strerror(errno)));
  }
  if (path == "-" || !S_ISREG(st.st_mode)) return open(path, sample_rate);  // pipes stream anyway
  ffmpeg::take_over_log();
  auto impl = std::make_unique<Impl>();
  impl->out_rate = sample_rate;
  impl->name = path;
  impl->follow = std::make_unique<FollowSource>();
  impl->follow->options = options;
  impl->follow->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (impl->follow->fd < 0) return io_error(fmt("'%s': %s", path.c_str(), std::strerror(errno)));
  auto* buffer = static_cast<uint8_t*>(av_malloc(kMemoryIoBufferBytes));
  if (!buffer) return Status(StatusCode::kOutOfMemory, "av_malloc failed");
  impl->custom_io = avio_alloc_context(buffer, kMemoryIoBufferBytes, 0, impl->follow.get(),
                                       &FollowSource::read, nullptr, nullptr);
  if (!impl->custom_io) {
    av_free(buffer);
    return Status(StatusCode::kOutOfMemory, "avio_alloc_context failed");
  }
  Status s = impl->open_format("", impl->custom_io);
  if (!s.ok() && impl->follow->shrank_to >= 0) return impl->follow_error();
  OMNI_RETURN_IF_ERROR(s);
  return std::unique_ptr<StreamDecoder>(new StreamDecoder(std::move(impl)));
}

StatusOr<size_t> StreamDecoder::read(float* out, size_t max_samples) {
  if (max_samples == 0) return size_t{0};
  if (!out) return invalid_argument("StreamDecoder::read: null output buffer");
  ffmpeg::forget_last_error();
  OMNI_RETURN_IF_ERROR(impl_->fill());
  size_t n = std::min(max_samples, impl_->pending.size() - impl_->pending_pos);
  if (n > 0) std::memcpy(out, impl_->pending.data() + impl_->pending_pos, n * sizeof(float));
  impl_->pending_pos += n;
  return n;
}

int StreamDecoder::sample_rate() const { return impl_->out_rate; }
int StreamDecoder::source_rate() const { return impl_->codec->sample_rate; }
int StreamDecoder::source_channels() const { return impl_->codec->ch_layout.nb_channels; }
const std::string& StreamDecoder::codec_name() const { return impl_->codec_name; }

namespace {

// Longest decode_file/decode_memory result: 2^30 samples (4 GiB of float32, ~18.6 h at 16 kHz).
constexpr size_t kMaxDecodedSamples = size_t{1} << 30;

StatusOr<std::vector<float>> read_all(StreamDecoder& d, const std::string& name) {
  std::vector<float> out;
  constexpr size_t kChunk = 1 << 16;
  while (true) {
    size_t old = out.size();
    if (old + kChunk > kMaxDecodedSamples) {
      return out_of_range(fmt("'%s' decodes to more than %zu samples at %d Hz", name.c_str(),
                              kMaxDecodedSamples, d.sample_rate()));
    }
    out.resize(old + kChunk);
    OMNI_ASSIGN_OR_RETURN(size_t got, d.read(out.data() + old, kChunk));
    out.resize(old + got);
    if (got == 0) return out;
  }
}

}  // namespace

StatusOr<std::vector<float>> decode_file(const std::string& path, int sample_rate) {
  OMNI_ASSIGN_OR_RETURN(auto decoder, StreamDecoder::open(path, sample_rate));
  return read_all(*decoder, path == "-" ? "<stdin>" : path);
}

StatusOr<std::vector<float>> decode_memory(const uint8_t* data, size_t size, int sample_rate,
                                           const std::string& name) {
  OMNI_ASSIGN_OR_RETURN(auto decoder, StreamDecoder::open_memory(data, size, sample_rate, name));
  return read_all(*decoder, name);
}

}  // namespace omni::audio

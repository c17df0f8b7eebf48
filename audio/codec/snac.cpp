#include "audio/codec/snac.h"

#include <algorithm>
#include <cstring>

#include "audio/codec/snac_ops.h"
#include "kernels/cpu/ops_cpu.h"

namespace omni::audio {
namespace {

constexpr int kConvK = 7;  // every non-transposed conv of the decoder has kernel 7

// floor(a / b) for b > 0 and any sign of a.
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

}  // namespace

SnacSnake SnacSnake::from_alpha(std::vector<float> alpha) {
  SnacSnake s;
  s.inv_alpha.resize(alpha.size());
  for (size_t i = 0; i < alpha.size(); ++i) s.inv_alpha[i] = 1.0f / (alpha[i] + 1e-9f);
  s.alpha = std::move(alpha);
  return s;
}

SnacDecoder::SnacDecoder(const SnacWeights& w, ThreadPool& pool) : w_(w), pool_(&pool) {
  int64_t max_in = w.hp.latent_dim;
  for (const SnacBlock& b : w.blocks) max_in = std::max(max_in, b.in_dim);
  scratch_.resize(size_t(cpu::matmul_scratch_floats(max_in, pool.n_threads())));
  // Pack every matrix with a panel's worth of rows (the 7-tap output conv keeps the plain path).
  auto add = [&](const SnacMatrix& m) {
    if (m.data && m.n_out >= snac::kPanelRows && snac::packed_matmul_supported(m.type))
      packed_.emplace_back(m.data, snac::pack_weights(m.type, m.data, m.n_out, m.n_in));
  };
  add(w.in_pw);
  for (const SnacBlock& b : w.blocks) {
    add(b.up);
    add(b.noise);
    for (const SnacResidualUnit& r : b.res) add(r.pw);
  }
}

const snac::PackedWeights* SnacDecoder::packed(const SnacMatrix& m) const {
  if (!snac::packed_matmul_supported(m.type)) return nullptr;  // the ISA can change (cpu::set_isa)
  for (const auto& [data, p] : packed_)
    if (data == m.data && p.n_out == m.n_out && p.n_in == m.n_in) return p.bf16 && !bf16_dot_ ? nullptr : &p;
  return nullptr;
}

void SnacDecoder::set_thread_pool(ThreadPool& pool) {
  pool_ = &pool;
  int64_t max_in = w_.hp.latent_dim;
  for (const SnacBlock& b : w_.blocks) max_in = std::max(max_in, b.in_dim);
  const size_t need = size_t(cpu::matmul_scratch_floats(max_in, pool.n_threads()));
  if (scratch_.size() < need) scratch_.resize(need);
}

float* SnacDecoder::buf(int i, int64_t n) {
  if (bufs_[i].size() < size_t(n)) bufs_[i].resize(size_t(n));
  return bufs_[i].data();
}

// cpu::matmul hands each thread all its rows and all T steps; for f32 weights its GEMM then
// re-reads the thread's whole weight range for every block of 6 steps, which at these shapes
// (W up to 32 MiB, T up to 24064) is DRAM traffic of hundreds of MiB per call. So tile here:
// steps in chunks whose x fits in L2 (256 KiB), rows in tiles whose W fits in L1 (32 KiB),
// and call cpu::matmul_rows per (chunk, tile): x and W are read from cache, each W byte once
// per chunk. Threads split the chunks when there are enough of them, else the row tiles.
void SnacDecoder::matmul(const SnacMatrix& m, const float* x, int64_t T, float* y, const float* bias,
                         const float* residual) {
  const int64_t n_in = m.n_in, n_out = m.n_out;
  if (const snac::PackedWeights* pw = packed(m)) {
    // Steps in chunks whose x fits in L2, panels (n_in x 32 floats) streamed from L2; threads
    // split the chunks when there are enough, else the panels.
    const int64_t tc = std::min(T, std::max<int64_t>(12, (int64_t(64) << 10) / n_in / 12 * 12));
    const int64_t n_tc = (T + tc - 1) / tc, n_p = pw->n_panels();
    const int nt = pool_->n_threads();
    const int64_t per_thread = snac::packed_scratch_elems(*pw, tc);
    if (xbf_.size() < size_t(per_thread * nt)) xbf_.resize(size_t(per_thread * nt));
    auto run = [&](int64_t c0, int64_t c1, int64_t p0, int64_t p1, int ti) {
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t t0 = c * tc;
        snac::packed_matmul(*pw, p0, p1, x + t0 * n_in, std::min(tc, T - t0), y + t0 * n_out, n_out,
                            xbf_.data() + ti * per_thread, bias, residual ? residual + t0 * n_out : nullptr);
      }
    };
    if (n_tc >= 2 * nt || n_p < nt) {
      pool_->parallel_for(n_tc, 1, [&](int64_t b, int64_t e, int ti) { run(b, e, 0, n_p, ti); });
    } else {
      pool_->parallel_for(n_p, 1, [&](int64_t b, int64_t e, int ti) { run(0, n_tc, b, e, ti); });
    }
    return;
  }
  // The plain path: into y, or into a temporary for a residual branch; then the epilogue's passes.
  float* out = y;
  if (residual) {
    if (acc_tmp_.size() < size_t(T * n_out)) acc_tmp_.resize(size_t(T * n_out));
    out = acc_tmp_.data();
  }
  int64_t tc = std::max<int64_t>(6, (int64_t(64) << 10) / n_in / 6 * 6);
  tc = std::min(tc, T);
  int64_t rt = std::max<int64_t>(16, (int64_t(8) << 10) / n_in / 16 * 16);
  rt = std::min(rt, n_out);
  const int64_t n_tc = (T + tc - 1) / tc, n_rt = (n_out + rt - 1) / rt;
  const int nt = pool_->n_threads();
  const bool split_steps = n_tc >= 2 * nt || n_rt < nt;
  const int64_t per_thread_scratch = cpu::matmul_scratch_floats(n_in, 1);
  auto run = [&](int64_t c0, int64_t c1, int64_t r0, int64_t r1, int ti) {
    float* scratch = scratch_.data() + ti * per_thread_scratch;
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t t0 = c * tc, n = std::min(tc, T - t0);
      for (int64_t r = r0; r < r1; ++r)
        cpu::matmul_rows(m.type, m.data, r * rt, std::min(n_out, (r + 1) * rt), n_in, x + t0 * n_in, n,
                         n_out, out + t0 * n_out, scratch);
    }
  };
  if (split_steps) {
    pool_->parallel_for(n_tc, 1, [&](int64_t b, int64_t e, int ti) { run(b, e, 0, n_rt, ti); });
  } else {
    pool_->parallel_for(n_rt, 1, [&](int64_t b, int64_t e, int ti) { run(0, n_tc, b, e, ti); });
  }
  if (residual) {
    if (y != residual) std::copy(residual, residual + T * n_out, y);
    snac::add_residual(*pool_, y, out, bias, T, n_out);
  } else {
    snac::add_bias(*pool_, y, T, n_out, bias);
  }
}

StatusOr<int64_t> SnacDecoder::check_codes(const SnacCodes& codes) const {
  const SnacHParams& hp = w_.hp;
  if (codes.size() != hp.vq_strides.size())
    return invalid_argument(fmt("snac: %zu code levels given, the codec has %zu", codes.size(),
                                hp.vq_strides.size()));
  const int64_t n_groups = int64_t(codes[0].size()) / hp.codes_per_group(0);
  for (size_t l = 0; l < codes.size(); ++l) {
    const int64_t want = n_groups * hp.codes_per_group(l);
    if (int64_t(codes[l].size()) != want)
      return invalid_argument(fmt("snac: level %zu has %zu codes, expected %lld (%lld frame groups x %lld)",
                                  l, codes[l].size(), (long long)want, (long long)n_groups,
                                  (long long)hp.codes_per_group(l)));
    for (size_t i = 0; i < codes[l].size(); ++i)
      if (codes[l][i] < 0 || codes[l][i] >= hp.codebook_size)
        return invalid_argument(fmt("snac: level %zu code %zu is %d, outside [0, %lld)", l, i,
                                    codes[l][i], (long long)hp.codebook_size));
  }
  return n_groups;
}

void SnacDecoder::latents(const SnacCodes& codes, std::vector<float>* z) const {
  const SnacHParams& hp = w_.hp;
  const int64_t D = hp.latent_dim, cd = hp.codebook_dim;
  const int64_t T = int64_t(codes[0].size()) * hp.vq_strides[0];
  const size_t base = z->size();
  z->resize(base + size_t(T * D));
  float* out = z->data() + base;
  std::vector<float> proj(static_cast<size_t>(D));
  for (size_t l = 0; l < codes.size(); ++l) {
    const SnacQuantizer& q = w_.quantizers[l];
    const int s = hp.vq_strides[l];
    for (size_t i = 0; i < codes[l].size(); ++i) {
      const float* e = q.codebook.data() + int64_t(codes[l][i]) * cd;
      for (int64_t o = 0; o < D; ++o) {
        float acc = 0.0f;
        for (int64_t c = 0; c < cd; ++c) acc += q.out_w[size_t(o * cd + c)] * e[c];
        proj[size_t(o)] = acc + q.out_b[size_t(o)];
      }
      for (int r = 0; r < s; ++r) {
        float* zr = out + (int64_t(i) * s + r) * D;
        for (int64_t o = 0; o < D; ++o) zr[o] = (l == 0 ? 0.0f : zr[o]) + proj[size_t(o)];
      }
    }
  }
}

// Stage functions: each computes its op over a window of steps as if it were the whole
// sequence (zero padding at both ends) and returns a decoder buffer (valid until the next call).
// Buffers: 0 (or 3, for a residual unit whose input is in 0) holds a stage's result; 1 and 2 are
// temporaries. An input may be buffer 0 or 3 (the previous stage's result): each stage reads its
// input fully before it resizes buffer 0, and a residual unit writes the buffer its input is not in.
float* SnacDecoder::run_input(const float* z, int64_t T) {
  const SnacHParams& hp = w_.hp;
  float* a = buf(1, T * hp.latent_dim);
  snac::depthwise_conv1d(*pool_, z, a, T, hp.latent_dim, w_.in_dw_w.data(), kConvK, 1, w_.in_dw_b.data());
  float* x = buf(0, T * hp.decoder_dim);
  matmul(w_.in_pw, a, T, x, w_.in_pw_b.data());
  return x;
}

// Fused over time chunks when both matrices are packed and small enough to stay in L2 while
// the chunks stream (the last two blocks, where the activations are large): per chunk of
// input steps, snake and the transposed conv's taps for the chunk and its one-step halo each
// side (consecutive chunks of a thread share the halo), the overlap-add into the output rows,
// and the noise block on them. The result equals the unfused passes bit for bit. Otherwise
// each step is one pass over the whole window, split across the pool.
float* SnacDecoder::run_up(size_t bi, const float* x, int64_t T, int64_t out_t0) {
  const SnacBlock& b = w_.blocks[bi];
  const int s = b.stride, k = 2 * s, p = (s + 1) / 2;
  const int64_t Ci = b.in_dim, C = b.out_dim, Tn = T * s, zc = int64_t(k) * C;
  const bool noise = noise_on() && b.noise.data;
  const snac::PackedWeights* pu = packed(b.up);
  const snac::PackedWeights* pn = noise ? packed(b.noise) : nullptr;
  // Input steps per chunk: ~128 KiB of taps, a multiple of the GEMM's 12-step tile.
  const int64_t tc = ((int64_t(32) << 10) / zc + 11) / 12 * 12;
  const int64_t n_chunks = (T + tc - 1) / tc;
  const int nt = pool_->n_threads();
  const bool fits = pu && pu->bytes() + (pn ? pn->bytes() : 0) <= (size_t(1) << 20);
  if (fits && (!noise || pn) && n_chunks >= 2 * nt) {
    float* y = buf(x == bufs_[0].data() ? 3 : 0, Tn * C);
    const int64_t zr = tc + 2, on = tc * s;  // taps rows, output rows per chunk
    const int64_t per_thread = zr * Ci + zr * zc + (noise ? on * C + on : 0);
    const int64_t xbf_per = std::max(snac::packed_scratch_elems(*pu, zr), pn ? snac::packed_scratch_elems(*pn, on) : 0);
    if (fuse_.size() < size_t(per_thread * nt)) fuse_.resize(size_t(per_thread * nt));
    if (xbf_.size() < size_t(xbf_per * nt)) xbf_.resize(size_t(xbf_per * nt));
    pool_->parallel_for(n_chunks, 1, [&](int64_t c0, int64_t c1, int ti) {
      float* sx = fuse_.data() + ti * per_thread;
      float* zz = sx + zr * Ci;
      float* h = zz + zr * zc;
      float* nv = h + on * C;
      uint16_t* xb = xbf_.data() + ti * xbf_per;
      int64_t z_lo = 0, z_hi = 0;  // zz holds the taps of input rows [z_lo, z_hi)
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t i0 = c * tc, i1 = std::min(T, i0 + tc);
        const int64_t lo = std::max<int64_t>(0, i0 - 1), hi = std::min(T, i1 + 1);
        const int64_t keep = c > c0 ? std::max<int64_t>(0, z_hi - lo) : 0;
        if (keep > 0) std::memmove(zz, zz + (lo - z_lo) * zc, size_t(keep * zc) * sizeof(float));
        const int64_t n_new = hi - lo - keep;
        snac::snake_rows(x + (lo + keep) * Ci, sx, n_new, Ci, b.snake.alpha.data(), b.snake.inv_alpha.data());
        snac::packed_matmul(*pu, 0, pu->n_panels(), sx, n_new, zz + keep * zc, zc, xb);
        z_lo = lo;
        z_hi = hi;
        snac::overlap_add_rows(zz, lo, T, C, k, s, p, b.up_b.data(), y, i0 * s, i1 * s);
        if (noise) {
          const int64_t n_out = (i1 - i0) * s;
          float* yc = y + i0 * s * C;
          snac::packed_matmul(*pn, 0, pn->n_panels(), yc, n_out, h, C, xb);
          for (int64_t r = 0; r < n_out; ++r) nv[r] = snac::noise_value(seed_, int(bi), out_t0 + i0 * s + r);
          snac::add_scaled_rows_serial(yc, h, nv, n_out, C);
        }
      }
    });
    return y;
  }
  float* sx = buf(1, T * Ci);
  snac::snake(*pool_, x, sx, T, Ci, b.snake.alpha.data(), b.snake.inv_alpha.data());
  float* zz = buf(2, T * zc);
  matmul(b.up, sx, T, zz);
  float* y = buf(0, Tn * C);
  snac::overlap_add(*pool_, zz, T, C, k, s, p, b.up_b.data(), y);
  if (noise) {
    float* h = buf(1, Tn * C);
    matmul(b.noise, y, Tn, h);
    noise_.resize(size_t(Tn));
    for (int64_t t = 0; t < Tn; ++t) noise_[size_t(t)] = snac::noise_value(seed_, int(bi), out_t0 + t);
    snac::add_scaled_rows(*pool_, y, h, noise_.data(), Tn, C);
  }
  return y;
}

// Out of place, into whichever of buffers 0 and 3 does not hold x. With packed weights and
// enough steps, fused over time chunks that stay in L2: per chunk, snake1 over the chunk and
// its conv halo, the depthwise conv with snake2, and the 1x1 conv whose epilogue adds the bias
// and x; one read of x and one write of the output instead of seven passes over [T, C]. Every
// value is computed as the unfused passes compute it, so both give the same bits.
float* SnacDecoder::run_residual(size_t bi, int r, const float* x, int64_t T) {
  const SnacResidualUnit& u = w_.blocks[bi].res[r];
  const int64_t C = w_.blocks[bi].out_dim;
  float* out = buf(x == bufs_[0].data() ? 3 : 0, T * C);
  const snac::PackedWeights* pw = packed(u.pw);
  const int64_t h = int64_t(kConvK / 2) * u.dilation;                  // conv halo, steps
  // Steps per chunk: ~64 KiB of f32, a multiple of the GEMM's 12-step tile.
  const int64_t tc = std::max<int64_t>(24, ((int64_t(16) << 10) / C + 11) / 12 * 12);
  const int64_t n_chunks = (T + tc - 1) / tc;
  const int nt = pool_->n_threads();
  if (pw && n_chunks >= 2 * nt) {
    const int64_t s1_rows = tc + 2 * h, per_thread = (s1_rows + tc) * C;
    const int64_t xbf_per = snac::packed_scratch_elems(*pw, tc);
    if (fuse_.size() < size_t(per_thread * nt)) fuse_.resize(size_t(per_thread * nt));
    if (xbf_.size() < size_t(xbf_per * nt)) xbf_.resize(size_t(xbf_per * nt));
    pool_->parallel_for(n_chunks, 1, [&](int64_t b, int64_t e, int ti) {
      float* s1 = fuse_.data() + ti * per_thread;
      float* y2 = s1 + s1_rows * C;
      uint16_t* xb = xbf_.data() + ti * xbf_per;
      int64_t s1_lo = 0, s1_hi = 0;  // s1 holds snake1 of x rows [s1_lo, s1_hi)
      for (int64_t c = b; c < e; ++c) {
        const int64_t t0 = c * tc, t1 = std::min(T, t0 + tc);
        const int64_t lo = std::max<int64_t>(0, t0 - h), hi = std::min(T, t1 + h);
        // Consecutive chunks share 2h rows of halo: keep them, compute only the new rows.
        const int64_t keep = c > b ? std::max<int64_t>(0, s1_hi - lo) : 0;
        if (keep > 0) std::memmove(s1, s1 + (lo - s1_lo) * C, size_t(keep * C) * sizeof(float));
        snac::snake_rows(x + (lo + keep) * C, s1 + keep * C, hi - lo - keep, C, u.snake1.alpha.data(),
                         u.snake1.inv_alpha.data());
        s1_lo = lo;
        s1_hi = hi;
        snac::depthwise_conv1d_rows(s1, lo, y2, t0, t1, T, C, u.dw_w.data(), kConvK, u.dilation, u.dw_b.data(),
                                    u.snake2.alpha.data(), u.snake2.inv_alpha.data());
        snac::packed_matmul(*pw, 0, pw->n_panels(), y2, t1 - t0, out + t0 * C, C, xb, u.pw_b.data(), x + t0 * C);
      }
    });
    return out;
  }
  float* y1 = buf(1, T * C);
  float* y2 = buf(2, T * C);
  snac::snake(*pool_, x, y1, T, C, u.snake1.alpha.data(), u.snake1.inv_alpha.data());
  snac::depthwise_conv1d(*pool_, y1, y2, T, C, u.dw_w.data(), kConvK, u.dilation, u.dw_b.data(),
                         u.snake2.alpha.data(), u.snake2.inv_alpha.data());
  matmul(u.pw, y2, T, out, u.pw_b.data(), /*residual=*/x);  // out = x + (pw(y2) + b)
  return out;
}

void SnacDecoder::run_output(const float* x, int64_t T, float* pcm) {
  const int64_t C = w_.blocks.empty() ? w_.hp.decoder_dim : w_.blocks.back().out_dim;
  float* sx = buf(1, T * C);
  snac::snake(*pool_, x, sx, T, C, w_.out_snake.alpha.data(), w_.out_snake.inv_alpha.data());
  float* taps = buf(2, T * kConvK);
  matmul(SnacMatrix{DType::kF32, w_.out_w.data(), C, kConvK}, sx, T, taps);
  snac::taps_to_mono_tanh(*pool_, taps, T, kConvK, w_.out_b, pcm);
}

void SnacDecoder::decode_latents(const float* z, int64_t T, int64_t t0, float* pcm) {
  float* x = run_input(z, T);
  int64_t rate = 1;  // output steps per latent step so far
  for (size_t bi = 0; bi < w_.blocks.size(); ++bi) {
    rate *= w_.blocks[bi].stride;
    x = run_up(bi, x, T * rate / w_.blocks[bi].stride, t0 * rate);
    for (int r = 0; r < 3; ++r) x = run_residual(bi, r, x, T * rate);
  }
  run_output(x, T * rate, pcm);
}

Status SnacDecoder::decode(const SnacCodes& codes, std::vector<float>* pcm) {
  OMNI_ASSIGN_OR_RETURN(int64_t n_groups, check_codes(codes));
  pcm->assign(size_t(n_groups * w_.hp.samples_per_group()), 0.0f);
  if (n_groups == 0) return Status::Ok();
  std::vector<float> z;
  const ThreadPool::Spin spin(*pool_);
  latents(codes, &z);
  decode_latents(z.data(), n_groups * w_.hp.vq_strides[0], 0, pcm->data());
  return Status::Ok();
}

void SnacDecoder::dependency(int64_t n_begin, int64_t n_end, int64_t* lo, int64_t* hi) const {
  // Walk from the output back to the latent: a same-padded conv of kernel k and dilation d
  // widens the interval by 3d each side; a transposed conv (stride s, kernel 2s, padding p)
  // maps output o to inputs [ceil((o + p - 2s + 1) / s), floor((o + p) / s)].
  int64_t l = n_begin, h = n_end - 1;
  const int half = (kConvK - 1) / 2;
  l -= half;  // output conv
  h += half;
  for (size_t bi = w_.blocks.size(); bi-- > 0;) {
    const SnacBlock& b = w_.blocks[bi];
    for (const SnacResidualUnit& r : b.res) {
      l -= int64_t(half) * r.dilation;
      h += int64_t(half) * r.dilation;
    }
    const int64_t s = b.stride, p = (s + 1) / 2;
    l = -floor_div(-(l + p - 2 * s + 1), s);  // ceil
    h = floor_div(h + p, s);
  }
  *lo = l - half;  // input depthwise conv
  *hi = h + half;
}

}  // namespace omni::audio

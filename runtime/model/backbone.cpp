#include "runtime/model/backbone.h"

#include <algorithm>

#include "kernels/cpu/ops_cpu.h"

namespace omni {

std::vector<int64_t> extra_output_offsets(std::span<const Weight> mats) {
  std::vector<int64_t> off(mats.size() + 1, 0);
  for (size_t i = 0; i < mats.size(); ++i) off[i + 1] = off[i] + mats[i].n_out;
  return off;
}

Status check_extra_outputs(std::span<const Weight> mats, int64_t n_embd) {
  if (mats.empty()) return invalid_argument("no extra output matrices");
  for (size_t i = 0; i < mats.size(); ++i) {
    const Weight& w = mats[i];
    if (!w.data) return invalid_argument(fmt("extra output matrix %zu has no data", i));
    if (w.n_in != n_embd)
      return invalid_argument(fmt("extra output matrix %zu is %lld wide, the backbone's n_embd is %lld", i,
                                  (long long)w.n_in, (long long)n_embd));
    if (w.n_out < 1) return invalid_argument(fmt("extra output matrix %zu has %lld rows", i, (long long)w.n_out));
  }
  return Status::Ok();
}

Status check_extra_output_ids(const int32_t* which, int32_t n, size_t n_mats) {
  if (n < 0 || (n > 0 && !which)) return invalid_argument(fmt("%d extra outputs requested without ids", n));
  for (int32_t a = 0; a < n; ++a)
    if (which[a] < 0 || static_cast<size_t>(which[a]) >= n_mats)
      return invalid_argument(fmt("extra output %d is outside the set of %zu matrices", which[a], n_mats));
  return Status::Ok();
}

Status CpuBackbone::set_extra_outputs(std::span<const Weight> mats) {
  OMNI_RETURN_IF_ERROR(check_extra_outputs(mats, ctx_.model().hparams().n_embd));
  for (size_t i = 0; i < mats.size(); ++i)
    if (!dtype_traits(mats[i].type).supported)
      return unsupported(fmt("extra output matrix %zu has type %s, which omnirt cannot compute with", i,
                             dtype_name(mats[i].type)));
  mats_.assign(mats.begin(), mats.end());
  offsets_ = extra_output_offsets(mats);
  return Status::Ok();
}

Status CpuBackbone::run_extra_outputs(const int32_t* which, int32_t n, float* out) {
  if (mats_.empty()) return wrong_state("run_extra_outputs() before set_extra_outputs()");
  const float* hidden = ctx_.last_hidden();
  if (!hidden) return wrong_state("the context has no hidden state (evaluate a prompt first)");
  OMNI_RETURN_IF_ERROR(check_extra_output_ids(which, n, mats_.size()));
  if (n == 0) return Status::Ok();
  // Rows of the requested matrices laid end to end: [0, total), in balanced chunks (a chunk may
  // span two matrices) of a multiple of 16 rows: a q8_0/f16 row block, and no false sharing.
  int64_t start[kMaxExtraOutputs + 1];
  if (n > kMaxExtraOutputs) return invalid_argument(fmt("%d extra outputs at once (at most %d)", n, kMaxExtraOutputs));
  start[0] = 0;
  for (int32_t a = 0; a < n; ++a) start[a + 1] = start[a] + mats_[static_cast<size_t>(which[a])].n_out;
  ThreadPool& pool = ctx_.step_pool();
  const Weight& w0 = mats_[static_cast<size_t>(which[0])];
  const int64_t chunk = cpu::matvec_chunk_rows(dtype_row_bytes(w0.type, w0.n_in), start[n], pool.n_threads(), 16);
  pool.parallel_for_balanced(start[n], chunk, [&](int64_t b, int64_t e, int) {
    int32_t a = static_cast<int32_t>(std::upper_bound(start, start + n + 1, b) - start) - 1;
    for (int64_t g = b; g < e; ++a) {
      const int64_t lo = g - start[a], hi = std::min(start[a + 1], e) - start[a];
      const int32_t i = which[a];
      const Weight& w = mats_[static_cast<size_t>(i)];
      cpu::matmul_rows(w.type, w.data, lo, hi, w.n_in, hidden, 1, w.n_out, out + offsets_[static_cast<size_t>(i)],
                       nullptr);
      g = start[a] + hi;
    }
  });
  return Status::Ok();
}

}  // namespace omni

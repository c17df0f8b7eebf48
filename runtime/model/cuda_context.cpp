// CudaContext: the shared forward pass of context.cpp, step for step, on the CUDA kernels.
#include "runtime/model/cuda_context.h"

#if OMNIRT_HAVE_CUDA

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <unordered_map>

#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/ops_cuda.h"

namespace omni {
namespace {

struct DevWeight {
  DType type = DType::kF32;
  const void* data = nullptr;  // device
  int64_t n_in = 0, n_out = 0;
};

struct DevLayer {
  const float *attn_norm = nullptr, *q_norm = nullptr, *k_norm = nullptr, *post_attn_norm = nullptr;
  const float *ffn_norm = nullptr, *post_ffn_norm = nullptr, *bq = nullptr, *bk = nullptr, *bv = nullptr;
  DevWeight wq, wk, wv, wo, gate, up, down;
  // Prefill fusion (data null where not fused): [wq; wk; wv] and [gate; up] rows concatenated in
  // the stored type; wq/wk/wv and gate/up are then views into them. bqkv: [bq | bk | bv], zeros
  // for a missing bias.
  DevWeight wqkv, gate_up;
  const float* bqkv = nullptr;
  uint16_t *k_cache = nullptr, *v_cache = nullptr;  // f16 [n_seq][n_ctx, n_head_kv, head_dim]
  bool swa = false;
};

size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

// Captures enqueue() (which enqueues on s and returns a Status) into *exec. On failure *exec is
// null and the reason is returned; capture errors are not sticky, the last-error slot is cleared.
template <class Enqueue>
Status capture_graph(cudaStream_t s, Enqueue&& enqueue, cudaGraphExec_t* exec) {
  cudaGraph_t graph = nullptr;
  Status st = cuda::cuda_status(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal), "begin capture");
  if (st.ok()) {
    st = enqueue();
    const cudaError_t end = cudaStreamEndCapture(s, &graph);
    if (st.ok()) st = cuda::cuda_status(end, "end capture");
  }
  if (st.ok()) st = cuda::cuda_status(cudaGraphInstantiate(exec, graph, 0), "instantiate graph");
  if (graph) cudaGraphDestroy(graph);
  if (!st.ok()) {
    *exec = nullptr;
    cudaGetLastError();
  }
  return st;
}

}  // namespace

struct CudaContext::Impl {
  cuda::Stream stream;
  cuda::Event step_begin, step_end;
  cuda::BlasHandle blas;
  bool have_blas = false;
  cuda::DeviceArena weights, work;
  cuda::PinnedBuffer pinned;
  // Pinned staging: prefill tokens/positions [stage], then the decode step's fixed slots that the
  // CUDA graph's copy nodes read and write: tokens [16], positions [16], argmax [16].
  int32_t *h_tokens = nullptr, *h_pos = nullptr, *h_btok = nullptr, *h_bpos = nullptr, *h_next = nullptr;

  DevWeight tok_embd, output;
  const float* output_norm = nullptr;
  std::vector<DevLayer> layers;
  int64_t rows = 0;  // activation rows the buffers hold: max(n_batch, kMaxBatch)
  float *x = nullptr, *xn = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *attn = nullptr;
  float *ffn_a = nullptr, *ffn_b = nullptr, *tmp = nullptr, *logits = nullptr, *attn_ws = nullptr;
  float* fused = nullptr;  // [rows, fused_cols]: a fused GEMM's output (q|k|v, then gate|up); may hold ffn_b
  bool any_fused = false;
  int32_t *d_tokens = nullptr, *d_pos = nullptr, *d_next = nullptr;
  uint16_t *w_scratch = nullptr, *x_scratch = nullptr;
  cudaGraphExec_t graphs[kMaxBatch + 1] = {};

  // Extra output matrices (set_extra_outputs): their own arena (weights, then the outputs laid
  // end to end), the host mappings they came from (to recognise the same set), pinned outputs.
  struct Extra {
    const void* host = nullptr;
    DevWeight w;
  };
  std::vector<Extra> extra;
  std::vector<int64_t> extra_off;  // [n + 1]
  cuda::DeviceArena extra_arena;
  float* extra_out = nullptr;      // device [extra_off.back()]
  cuda::PinnedBuffer extra_pinned;  // host [extra_off.back()]

  // eval_embedding_step: the staged row [n_embd] and its graphs (0: logits, 1: hidden only).
  cuda::PinnedBuffer embd_pinned;
  float* h_embd = nullptr;
  cudaGraphExec_t embd_graphs[2] = {};

  ~Impl() {
    for (cudaGraphExec_t& g : graphs)
      if (g) cudaGraphExecDestroy(g);
    for (cudaGraphExec_t& g : embd_graphs)
      if (g) cudaGraphExecDestroy(g);
  }
};

bool CudaContext::has_gemm() const { return impl_ && impl_->have_blas && impl_->x_scratch != nullptr; }

bool CudaContext::prefill_fused() const { return impl_ && impl_->any_fused; }

void* CudaContext::stream_handle() const { return impl_ ? impl_->stream.get() : nullptr; }

StatusOr<std::unique_ptr<CudaContext>> CudaContext::create(const Model& model, const ContextParams& params,
                                                           const CudaContextOptions& options) {
  const HParams& hp = model.hparams();
  if (params.n_ctx < 0) return invalid_argument(fmt("n_ctx = %lld must be >= 0", (long long)params.n_ctx));
  if (params.n_batch <= 0 || params.n_batch > 65536)
    return invalid_argument(fmt("n_batch = %lld must be in [1, 65536]", (long long)params.n_batch));
  if (params.kv_type != DType::kF16)
    return invalid_argument(fmt("KV cache type %s is not supported on CUDA (f16)", dtype_name(params.kv_type)));
  if (options.n_seq < 1 || options.n_seq > kMaxBatch)
    return invalid_argument(fmt("n_seq = %d must be in [1, %d]", options.n_seq, kMaxBatch));
  if (hp.head_dim > cuda::kAttnMaxHeadDim)
    return unsupported(fmt("head_dim = %lld exceeds the CUDA attention limit %d", (long long)hp.head_dim,
                           cuda::kAttnMaxHeadDim));
  OMNI_RETURN_IF_ERROR(cuda::set_device(options.device));
  OMNI_ASSIGN_OR_RETURN(cuda::DeviceInfo info, cuda::device_info(options.device));

  std::unique_ptr<CudaContext> c(new CudaContext());
  c->model_ = &model;
  c->params_ = params;
  c->options_ = options;
  c->device_name_ = info.name;
  c->n_ctx_ = params.n_ctx > 0 ? params.n_ctx : std::min<int64_t>(hp.n_ctx_train, 4096);
  if (c->n_ctx_ > (int64_t(1) << 22))
    return invalid_argument(fmt("n_ctx = %lld is too large (limit %lld)", (long long)c->n_ctx_, (long long)(1 << 22)));
  c->params_.n_ctx = c->n_ctx_;
  c->n_vocab_ = hp.n_vocab;
  c->seq_past_.assign(static_cast<size_t>(options.n_seq), 0);
  c->impl_ = std::make_unique<Impl>();
  Impl& I = *c->impl_;
  OMNI_ASSIGN_OR_RETURN(I.stream, cuda::Stream::create());
  OMNI_ASSIGN_OR_RETURN(I.step_begin, cuda::Event::create());
  OMNI_ASSIGN_OR_RETURN(I.step_end, cuda::Event::create());
  {
    auto blas = cuda::BlasHandle::create(I.stream.get());
    if (blas.ok()) {  // without cuBLAS, prefill runs the matvec kernels 16 tokens at a time
      I.blas = std::move(blas).value();
      I.have_blas = true;
    }
  }

  // ---- weights: one arena, each matrix 256-byte aligned, shared tensors (tied output) once.
  std::vector<const Weight*> mats = {&model.token_embd(), &model.output()};
  for (const LayerWeights& L : model.layers())
    for (const Weight* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down}) mats.push_back(w);
  std::vector<const std::vector<float>*> vecs = {&model.output_norm()};
  for (const LayerWeights& L : model.layers())
    for (const auto* v : {&L.attn_norm, &L.q_norm, &L.k_norm, &L.post_attn_norm, &L.ffn_norm, &L.post_ffn_norm, &L.bq,
                          &L.bk, &L.bv})
      vecs.push_back(v);
  size_t total = 0;
  std::unordered_map<const void*, size_t> seen;
  for (const Weight* w : mats) {
    if (!w->data || seen.count(w->data)) continue;
    if (!cuda::weight_type_supported(w->type))
      return unsupported(fmt("weight type %s has no CUDA kernel", dtype_name(w->type)));
    seen[w->data] = 0;
    total += round_up(static_cast<size_t>(dtype_row_bytes(w->type, w->n_in) * w->n_out), 256);
  }
  for (const auto* v : vecs) total += round_up(v->size() * sizeof(float), 256);
  // Prefill fusion applies where prefill chunks take the GEMM (cuBLAS, n_batch > 16 tokens).
  const char* fused_env = std::getenv("OMNIRT_CUDA_PREFILL_FUSED");
  const bool fuse = options.prefill_fused && !(fused_env && std::strcmp(fused_env, "0") == 0) && I.have_blas &&
                    std::min(params.n_batch, c->n_ctx_) > cuda::kMatvecMaxTokens;
  if (fuse)  // the concatenated biases; the fused matrices take no more than their parts' round-ups
    for (const LayerWeights& L : model.layers())
      total += round_up(size_t(L.wq.n_out + L.wk.n_out + L.wv.n_out) * sizeof(float), 256);
  OMNI_ASSIGN_OR_RETURN(I.weights, cuda::DeviceArena::create(total));
  seen.clear();
  std::unordered_map<const void*, const void*> dev_of;
  // Matrices that can be stored as one: present, distinct, not uploaded yet, one type and row
  // length, and each part a whole number of 16-byte units (a part's rows are contiguous bytes in
  // any type's layout, so its view stays 16-byte aligned for the matvec kernels).
  auto can_fuse = [&](std::initializer_list<const Weight*> ws) {
    const Weight* first = *ws.begin();
    for (const Weight* w : ws) {
      if (!w->data || dev_of.count(w->data) || w->type != first->type || w->n_in != first->n_in) return false;
      if (dtype_row_bytes(w->type, w->n_in) * w->n_out % 16 != 0) return false;
      for (const Weight* o : ws)
        if (o != w && o->data == w->data) return false;
    }
    return true;
  };
  // Uploads the parts end to end and records each host pointer's view.
  auto upload_fused = [&](std::initializer_list<const Weight*> ws) -> StatusOr<DevWeight> {
    const Weight* first = *ws.begin();
    DevWeight d{first->type, nullptr, first->n_in, 0};
    size_t bytes = 0;
    for (const Weight* w : ws) bytes += static_cast<size_t>(dtype_row_bytes(w->type, w->n_in) * w->n_out);
    OMNI_ASSIGN_OR_RETURN(void* p, I.weights.alloc(bytes));
    size_t off = 0;
    for (const Weight* w : ws) {
      const size_t b = static_cast<size_t>(dtype_row_bytes(w->type, w->n_in) * w->n_out);
      char* dst = static_cast<char*>(p) + off;
      OMNI_RETURN_IF_ERROR(cuda::cuda_status(cudaMemcpy(dst, w->data, b, cudaMemcpyHostToDevice), "upload weights"));
      dev_of[w->data] = dst;
      off += b;
      d.n_out += w->n_out;
    }
    d.data = p;
    return d;
  };
  auto upload_weight = [&](const Weight& w) -> StatusOr<DevWeight> {
    DevWeight d{w.type, nullptr, w.n_in, w.n_out};
    if (!w.data) return d;
    if (auto it = dev_of.find(w.data); it != dev_of.end()) {
      d.data = it->second;
      return d;
    }
    const size_t bytes = static_cast<size_t>(dtype_row_bytes(w.type, w.n_in) * w.n_out);
    OMNI_ASSIGN_OR_RETURN(void* p, I.weights.alloc(bytes));
    OMNI_RETURN_IF_ERROR(cuda::cuda_status(cudaMemcpy(p, w.data, bytes, cudaMemcpyHostToDevice), "upload weights"));
    dev_of[w.data] = p;
    d.data = p;
    return d;
  };
  auto upload_vec = [&](const std::vector<float>& v) -> StatusOr<const float*> {
    if (v.empty()) return static_cast<const float*>(nullptr);
    OMNI_ASSIGN_OR_RETURN(float* p, I.weights.alloc_array<float>(v.size()));
    OMNI_RETURN_IF_ERROR(
        cuda::cuda_status(cudaMemcpy(p, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice), "upload norms"));
    return static_cast<const float*>(p);
  };
  OMNI_ASSIGN_OR_RETURN(I.tok_embd, upload_weight(model.token_embd()));
  OMNI_ASSIGN_OR_RETURN(I.output, upload_weight(model.output()));
  OMNI_ASSIGN_OR_RETURN(I.output_norm, upload_vec(model.output_norm()));
  for (size_t il = 0; il < model.layers().size(); ++il) {
    const LayerWeights& L = model.layers()[il];
    DevLayer D;
    OMNI_ASSIGN_OR_RETURN(D.attn_norm, upload_vec(L.attn_norm));
    OMNI_ASSIGN_OR_RETURN(D.q_norm, upload_vec(L.q_norm));
    OMNI_ASSIGN_OR_RETURN(D.k_norm, upload_vec(L.k_norm));
    OMNI_ASSIGN_OR_RETURN(D.post_attn_norm, upload_vec(L.post_attn_norm));
    OMNI_ASSIGN_OR_RETURN(D.ffn_norm, upload_vec(L.ffn_norm));
    OMNI_ASSIGN_OR_RETURN(D.post_ffn_norm, upload_vec(L.post_ffn_norm));
    OMNI_ASSIGN_OR_RETURN(D.bq, upload_vec(L.bq));
    OMNI_ASSIGN_OR_RETURN(D.bk, upload_vec(L.bk));
    OMNI_ASSIGN_OR_RETURN(D.bv, upload_vec(L.bv));
    if (fuse && can_fuse({&L.wq, &L.wk, &L.wv})) {
      bool bias_ok = true;
      std::vector<float> b;
      if (!L.bq.empty() || !L.bk.empty() || !L.bv.empty()) {
        b.assign(size_t(L.wq.n_out + L.wk.n_out + L.wv.n_out), 0.0f);
        int64_t off = 0;
        for (auto [w, v] : {std::pair{&L.wq, &L.bq}, std::pair{&L.wk, &L.bk}, std::pair{&L.wv, &L.bv}}) {
          if (!v->empty() && static_cast<int64_t>(v->size()) != w->n_out) bias_ok = false;
          if (bias_ok && !v->empty()) std::copy(v->begin(), v->end(), b.begin() + off);
          off += w->n_out;
        }
      }
      if (bias_ok) {
        OMNI_ASSIGN_OR_RETURN(D.wqkv, upload_fused({&L.wq, &L.wk, &L.wv}));
        OMNI_ASSIGN_OR_RETURN(D.bqkv, upload_vec(b));
      }
    }
    if (fuse && L.ffn_gate.n_out == L.ffn_up.n_out && can_fuse({&L.ffn_gate, &L.ffn_up})) {
      OMNI_ASSIGN_OR_RETURN(D.gate_up, upload_fused({&L.ffn_gate, &L.ffn_up}));
    }
    OMNI_ASSIGN_OR_RETURN(D.wq, upload_weight(L.wq));
    OMNI_ASSIGN_OR_RETURN(D.wk, upload_weight(L.wk));
    OMNI_ASSIGN_OR_RETURN(D.wv, upload_weight(L.wv));
    OMNI_ASSIGN_OR_RETURN(D.wo, upload_weight(L.wo));
    OMNI_ASSIGN_OR_RETURN(D.gate, upload_weight(L.ffn_gate));
    OMNI_ASSIGN_OR_RETURN(D.up, upload_weight(L.ffn_up));
    OMNI_ASSIGN_OR_RETURN(D.down, upload_weight(L.ffn_down));
    D.swa = il < hp.layer_is_swa.size() && hp.layer_is_swa[il] != 0;
    I.layers.push_back(D);
  }
  c->weight_bytes_ = I.weights.used();

  // ---- activations, KV cache, workspaces: one arena.
  const int64_t d = hp.n_embd, q_dim = hp.n_head * hp.head_dim, kv_dim = hp.n_head_kv * hp.head_dim;
  const int64_t nb = std::min(params.n_batch, c->n_ctx_);
  c->params_.n_batch = nb;
  I.rows = std::max<int64_t>(nb, kMaxBatch);
  const int64_t R = I.rows, n_seq = options.n_seq;
  const int64_t max_in = std::max({d, q_dim, hp.n_ff});
  size_t w_scratch_elems = 0;
  if (I.have_blas && nb > cuda::kMatvecMaxTokens) {
    auto need = [&](const DevWeight& w) {
      if (w.data && w.type != DType::kBF16 && w.type != DType::kF16)  // f16/bf16 weights are GEMM operands as stored
        w_scratch_elems = std::max(w_scratch_elems, size_t(w.n_in * w.n_out));
    };
    need(I.output);
    for (const DevLayer& D : I.layers)
      for (const DevWeight* w : {&D.wq, &D.wk, &D.wv, &D.wo, &D.gate, &D.up, &D.down, &D.wqkv, &D.gate_up}) need(*w);
  }
  int64_t fused_cols = 0;
  for (const DevLayer& D : I.layers)
    for (const DevWeight* w : {&D.wqkv, &D.gate_up})
      if (w->data) fused_cols = std::max(fused_cols, w->n_out);
  I.any_fused = fused_cols > 0;
  const size_t kv_layer_bytes = static_cast<size_t>(n_seq * c->n_ctx_ * kv_dim) * 2;
  const int64_t ws_floats = cuda::attn_decode_workspace_floats(n_seq, hp.n_head, hp.head_dim, c->n_ctx_);
  size_t need_bytes = 0;
  auto add = [&](size_t bytes) { need_bytes += round_up(bytes, 256); };
  for (int i = 0; i < 3; ++i) add(size_t(R * d) * 4);        // x, xn, tmp
  for (int i = 0; i < 2; ++i) add(size_t(R * q_dim) * 4);    // q, attn
  for (int i = 0; i < 2; ++i) add(size_t(R * kv_dim) * 4);   // k, v
  // ffn_b is the fused buffer's start when that holds it: the fused buffer is dead between
  // qkv_split and the next layer's attn_qkv, and ffn_b lives only inside the FFN.
  const bool ffn_b_in_fused = fused_cols >= hp.n_ff;
  add(size_t(R * hp.n_ff) * 4);                              // ffn_a
  if (!ffn_b_in_fused) add(size_t(R * hp.n_ff) * 4);         // ffn_b
  add(size_t(R * c->n_vocab_) * 4);                          // logits
  add(size_t(ws_floats) * 4);
  for (int i = 0; i < 3; ++i) add(size_t(R) * 4);            // tokens, pos, next
  add(w_scratch_elems * 2);
  add(size_t(R * fused_cols) * 4);
  if (I.have_blas && nb > cuda::kMatvecMaxTokens) add(size_t(R * max_in) * 2);
  need_bytes += 2 * kv_layer_bytes * I.layers.size() + 256 * 2 * I.layers.size();
  OMNI_ASSIGN_OR_RETURN(I.work, cuda::DeviceArena::create(need_bytes));
  OMNI_ASSIGN_OR_RETURN(I.x, I.work.alloc_array<float>(size_t(R * d)));
  OMNI_ASSIGN_OR_RETURN(I.xn, I.work.alloc_array<float>(size_t(R * d)));
  OMNI_ASSIGN_OR_RETURN(I.tmp, I.work.alloc_array<float>(size_t(R * d)));
  OMNI_ASSIGN_OR_RETURN(I.q, I.work.alloc_array<float>(size_t(R * q_dim)));
  OMNI_ASSIGN_OR_RETURN(I.attn, I.work.alloc_array<float>(size_t(R * q_dim)));
  OMNI_ASSIGN_OR_RETURN(I.k, I.work.alloc_array<float>(size_t(R * kv_dim)));
  OMNI_ASSIGN_OR_RETURN(I.v, I.work.alloc_array<float>(size_t(R * kv_dim)));
  OMNI_ASSIGN_OR_RETURN(I.ffn_a, I.work.alloc_array<float>(size_t(R * hp.n_ff)));
  if (!ffn_b_in_fused) {
    OMNI_ASSIGN_OR_RETURN(I.ffn_b, I.work.alloc_array<float>(size_t(R * hp.n_ff)));
  }
  OMNI_ASSIGN_OR_RETURN(I.logits, I.work.alloc_array<float>(size_t(R * c->n_vocab_)));
  OMNI_ASSIGN_OR_RETURN(I.attn_ws, I.work.alloc_array<float>(size_t(ws_floats)));
  OMNI_ASSIGN_OR_RETURN(I.d_tokens, I.work.alloc_array<int32_t>(size_t(R)));
  OMNI_ASSIGN_OR_RETURN(I.d_pos, I.work.alloc_array<int32_t>(size_t(R)));
  OMNI_ASSIGN_OR_RETURN(I.d_next, I.work.alloc_array<int32_t>(size_t(R)));
  if (fused_cols > 0) {
    OMNI_ASSIGN_OR_RETURN(I.fused, I.work.alloc_array<float>(size_t(R * fused_cols)));
    if (ffn_b_in_fused) I.ffn_b = I.fused;
  }
  if (w_scratch_elems > 0) {
    OMNI_ASSIGN_OR_RETURN(I.w_scratch, I.work.alloc_array<uint16_t>(w_scratch_elems));
  }
  if (I.have_blas && nb > cuda::kMatvecMaxTokens) {  // x_scratch set <=> prefill uses the GEMM
    OMNI_ASSIGN_OR_RETURN(I.x_scratch, I.work.alloc_array<uint16_t>(size_t(R * max_in)));
  }
  for (DevLayer& D : I.layers) {
    OMNI_ASSIGN_OR_RETURN(void* kc, I.work.alloc(kv_layer_bytes));
    OMNI_ASSIGN_OR_RETURN(void* vc, I.work.alloc(kv_layer_bytes));
    D.k_cache = static_cast<uint16_t*>(kc);
    D.v_cache = static_cast<uint16_t*>(vc);
  }
  c->kv_bytes_ = 2 * kv_layer_bytes * I.layers.size();

  const int64_t stage = c->n_ctx_;
  OMNI_ASSIGN_OR_RETURN(I.pinned, cuda::PinnedBuffer::create(size_t(2 * stage + 3 * kMaxBatch) * sizeof(int32_t)));
  I.h_tokens = I.pinned.as<int32_t>();
  I.h_pos = I.h_tokens + stage;
  I.h_btok = I.h_pos + stage;
  I.h_bpos = I.h_btok + kMaxBatch;
  I.h_next = I.h_bpos + kMaxBatch;
  OMNI_ASSIGN_OR_RETURN(I.embd_pinned, cuda::PinnedBuffer::create(size_t(d) * sizeof(float)));
  I.h_embd = I.embd_pinned.as<float>();
  try {
    c->logits_.resize(static_cast<size_t>(c->n_vocab_));
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::kOutOfMemory, "cannot allocate host logits");
  }
  return c;
}

CudaContext::~CudaContext() {
  if (impl_) cudaStreamSynchronize(impl_->stream.get());
}

Status CudaContext::rewind(int64_t n) { return rewind_seq(0, n); }

Status CudaContext::rewind_seq(int s, int64_t n) {
  if (s < 0 || s >= options_.n_seq) return invalid_argument(fmt("sequence %d does not exist (%d)", s, options_.n_seq));
  if (n < 0 || n > seq_past_[size_t(s)])
    return out_of_range(fmt("cannot rewind to %lld: the context holds %lld tokens", (long long)n,
                            (long long)seq_past_[size_t(s)]));
  seq_past_[size_t(s)] = n;
  return Status::Ok();
}

namespace {

Status launched(cudaError_t err, const char* what) { return cuda::cuda_status(err, what); }

}  // namespace

// Enqueues the forward pass for n tokens whose ids and positions are already in d_tokens/d_pos.
// batch_decode: token s is sequence s's next token (KV per sequence, flash-decoding attention);
// else the n tokens are consecutive positions of sequence 0 (tiled prefill attention). Logits:
// every row (batch_decode or all_logits) or the last; with batch_decode also the argmax per row.
Status CudaContext::run_step(int64_t n, bool batch_decode, bool all_logits, bool /*copy_logits*/) {
  Impl& I = *impl_;
  const HParams& hp = model_->hparams();
  cudaStream_t s = I.stream.get();
  const int64_t d = hp.n_embd, hd = hp.head_dim, kv_dim = hp.n_head_kv * hd;
  const bool gemm = has_gemm() && n > cuda::kMatvecMaxTokens;
  // Every op's launch status; with an op hook (profiling), the hook runs after each op.
  auto done = [&](cudaError_t err, const char* what) -> Status {
    Status st = launched(err, what);
    if (st.ok() && op_hook_) op_hook_(op_hook_user_, what);
    return st;
  };

  auto mm = [&](const DevWeight& w, const float* in, float* out, int64_t rows, const float* bias, bool acc,
                const char* what) -> Status {
    if (gemm && rows > cuda::kMatvecMaxTokens) {
      cuda::GemmParams g;
      g.w_type = w.type;
      g.w = w.data;
      g.x = in;
      g.y = out;
      g.bias = bias;
      g.accumulate = acc;
      g.n_out = w.n_out;
      g.n_in = w.n_in;
      g.n_tok = rows;
      g.w_scratch = I.w_scratch;
      g.x_scratch = I.x_scratch;
      OMNI_RETURN_IF_ERROR(cuda::gemm_bf16(g, I.blas));
      return done(cudaSuccess, what);
    }
    for (int64_t t0 = 0; t0 < rows; t0 += cuda::kMatvecMaxTokens) {
      cuda::MatvecParams p;
      p.w_type = w.type;
      p.w = w.data;
      p.x = in + t0 * w.n_in;
      p.y = out + t0 * w.n_out;
      p.bias = bias;
      p.accumulate = acc;
      p.n_out = w.n_out;
      p.n_in = w.n_in;
      p.n_tok = std::min<int64_t>(cuda::kMatvecMaxTokens, rows - t0);
      OMNI_RETURN_IF_ERROR(done(cuda::launch_matvec(p, s), what));
    }
    return Status::Ok();
  };
  // Several matrices over the same input in one launch per 16 tokens (q/k/v, gate/up) when they
  // share type and width; otherwise (or for cuBLAS prefill) one mm each. Same bits either way.
  struct MmOut {
    const DevWeight* w;
    float* out;
    const float* bias;
    const char* what;
  };
  auto mm_fused = [&](std::initializer_list<MmOut> outs, const float* in, int64_t rows, const char* what) -> Status {
    bool fuse = !(gemm && rows > cuda::kMatvecMaxTokens);
    for (const MmOut& o : outs) fuse = fuse && o.w->type == outs.begin()->w->type && o.w->n_in == outs.begin()->w->n_in;
    if (!fuse) {
      for (const MmOut& o : outs) OMNI_RETURN_IF_ERROR(mm(*o.w, in, o.out, rows, o.bias, false, o.what));
      return Status::Ok();
    }
    for (int64_t t0 = 0; t0 < rows; t0 += cuda::kMatvecMaxTokens) {
      cuda::MatvecParams p[3];
      int k = 0;
      for (const MmOut& o : outs) {
        p[k].w_type = o.w->type;
        p[k].w = o.w->data;
        p[k].x = in + t0 * o.w->n_in;
        p[k].y = o.out + t0 * o.w->n_out;
        p[k].bias = o.bias;
        p[k].n_out = o.w->n_out;
        p[k].n_in = o.w->n_in;
        p[k].n_tok = std::min<int64_t>(cuda::kMatvecMaxTokens, rows - t0);
        ++k;
      }
      OMNI_RETURN_IF_ERROR(done(cuda::launch_matvecs(p, k, s), what));
    }
    return Status::Ok();
  };
  auto norm = [&](const float* x, const float* residual, float* x_sum, const float* w, float* y, int64_t rows,
                  int64_t width) {
    cuda::RmsNormParams p;
    p.x = x;
    p.residual = residual;
    p.x_sum_out = x_sum;
    p.w = w;
    p.y = y;
    p.rows = rows;
    p.n = width;
    p.eps = hp.norm_eps;
    return done(cuda::launch_rms_norm(p, s), "rms_norm");
  };

  if (!embd_input_) {
    cuda::EmbedParams e;
    e.w_type = I.tok_embd.type;
    e.w = I.tok_embd.data;
    e.tokens = I.d_tokens;
    e.out = I.x;
    e.n_vocab = hp.n_vocab;
    e.n_embd = d;
    e.n_tok = n;
    e.scale = hp.embd_scale;
    OMNI_RETURN_IF_ERROR(done(cuda::launch_embed(e, s), "embed"));
  }
  const int64_t seq_stride = batch_decode ? n_ctx_ * kv_dim : 0;
  for (const DevLayer& L : I.layers) {
    OMNI_RETURN_IF_ERROR(norm(I.x, nullptr, nullptr, L.attn_norm, I.xn, n, d));
    if (gemm && L.wqkv.data) {
      // One GEMM into [n, q|k|v], then one copy into q, k, v: the ops after (q/k norms,
      // rope_kv_append, attention) read contiguous rows.
      OMNI_RETURN_IF_ERROR(mm(L.wqkv, I.xn, I.fused, n, L.bqkv, false, "attn_qkv"));
      cuda::SplitColsParams sp;
      sp.src = I.fused;
      sp.dst[0] = I.q;
      sp.dst[1] = I.k;
      sp.dst[2] = I.v;
      sp.width[0] = L.wq.n_out;
      sp.width[1] = L.wk.n_out;
      sp.width[2] = L.wv.n_out;
      sp.rows = n;
      OMNI_RETURN_IF_ERROR(done(cuda::launch_split_cols(sp, s), "qkv_split"));
    } else {
      OMNI_RETURN_IF_ERROR(mm_fused(
          {{&L.wq, I.q, L.bq, "attn_q"}, {&L.wk, I.k, L.bk, "attn_k"}, {&L.wv, I.v, L.bv, "attn_v"}}, I.xn, n,
          "attn_qkv"));
    }
    if (L.q_norm) OMNI_RETURN_IF_ERROR(norm(I.q, nullptr, nullptr, L.q_norm, I.q, n * hp.n_head, hd));
    if (L.k_norm) OMNI_RETURN_IF_ERROR(norm(I.k, nullptr, nullptr, L.k_norm, I.k, n * hp.n_head_kv, hd));
    {  // rope(q), rope(k), append k and v to the caches: one launch
      cuda::RopeKvAppendParams r;
      r.q = I.q;
      r.k = I.k;
      r.v = I.v;
      r.k_cache = L.k_cache;
      r.v_cache = L.v_cache;
      r.pos = I.d_pos;
      r.n_tok = n;
      r.n_head = hp.n_head;
      r.n_kv_head = hp.n_head_kv;
      r.head_dim = hd;
      r.rot_dim = hp.rope_dim > 0 ? hp.rope_dim : 0;
      r.freq_base = L.swa ? hp.rope_freq_base_swa : hp.rope_freq_base;
      r.freq_scale = L.swa ? 1.0f : hp.rope_freq_scale;
      r.style = hp.rope_style;
      r.seq_stride = seq_stride;
      r.n_ctx = n_ctx_;
      OMNI_RETURN_IF_ERROR(done(cuda::launch_rope_kv_append(r, s), "rope_kv_append"));
    }
    const int64_t window = L.swa ? hp.sliding_window : 0;
    if (batch_decode) {
      cuda::AttnDecodeParams a;
      a.q = I.q;
      a.k = L.k_cache;
      a.v = L.v_cache;
      a.pos = I.d_pos;
      a.out = I.attn;
      a.workspace = I.attn_ws;
      a.n_seq = n;
      a.n_head = hp.n_head;
      a.n_kv_head = hp.n_head_kv;
      a.head_dim = hd;
      a.n_ctx = n_ctx_;
      a.seq_stride = seq_stride;
      a.window = window;
      a.scale = hp.attn_scale;
      OMNI_RETURN_IF_ERROR(done(cuda::launch_attn_decode(a, s), "attn_decode"));
    } else {
      cuda::AttnPrefillParams a;
      a.q = I.q;
      a.k = L.k_cache;
      a.v = L.v_cache;
      a.pos = I.d_pos;
      a.out = I.attn;
      a.n_q = n;
      a.n_head = hp.n_head;
      a.n_kv_head = hp.n_head_kv;
      a.head_dim = hd;
      a.window = window;
      a.scale = hp.attn_scale;
      OMNI_RETURN_IF_ERROR(done(cuda::launch_attn_prefill(a, s), "attn_prefill"));
    }
    // x += [post_norm](wo attn); xn = ffn_norm(x); x += [post_norm](down(act(gate xn) * up xn)).
    if (L.post_attn_norm) {
      OMNI_RETURN_IF_ERROR(mm(L.wo, I.attn, I.tmp, n, nullptr, false, "attn_output"));
      OMNI_RETURN_IF_ERROR(norm(I.tmp, nullptr, nullptr, L.post_attn_norm, I.tmp, n, d));
      OMNI_RETURN_IF_ERROR(norm(I.x, I.tmp, I.x, L.ffn_norm, I.xn, n, d));
    } else {
      OMNI_RETURN_IF_ERROR(mm(L.wo, I.attn, I.x, n, nullptr, true, "attn_output"));
      OMNI_RETURN_IF_ERROR(norm(I.x, nullptr, nullptr, L.ffn_norm, I.xn, n, d));
    }
    const cuda::GluAct act = hp.ffn_act == FfnActivation::kSilu ? cuda::GluAct::kSilu : cuda::GluAct::kGeluTanh;
    if (n == 1 && cuda::matvec_generation() >= 2 && L.gate.type == L.up.type && L.gate.n_in == L.up.n_in &&
        L.gate.n_out == L.up.n_out) {
      // One token: GLU in the gate/up matvec's epilogue (the same bits as the two launches below).
      cuda::MatvecGluParams g;
      g.w_type = L.gate.type;
      g.gate = L.gate.data;
      g.up = L.up.data;
      g.x = I.xn;
      g.y = I.ffn_a;
      g.tmp = I.ffn_b;
      g.n_out = L.gate.n_out;
      g.n_in = L.gate.n_in;
      g.act = act;
      OMNI_RETURN_IF_ERROR(done(cuda::launch_matvec_glu(g, s), "ffn_gate_up_glu"));
    } else if (gemm && L.gate_up.data) {
      // One GEMM into [n, gate|up]; the GLU reads both halves of each row.
      OMNI_RETURN_IF_ERROR(mm(L.gate_up, I.xn, I.fused, n, nullptr, false, "ffn_gate_up"));
      cuda::GluRowsParams g{I.fused, I.ffn_a, n, L.gate.n_out, L.gate_up.n_out, act};
      OMNI_RETURN_IF_ERROR(done(cuda::launch_glu_rows(g, s), "glu"));
    } else {
      OMNI_RETURN_IF_ERROR(mm_fused({{&L.gate, I.ffn_a, nullptr, "ffn_gate"}, {&L.up, I.ffn_b, nullptr, "ffn_up"}},
                                    I.xn, n, "ffn_gate_up"));
      cuda::GluParams g{I.ffn_a, I.ffn_b, I.ffn_a, n * hp.n_ff, act};
      OMNI_RETURN_IF_ERROR(done(cuda::launch_glu(g, s), "glu"));
    }
    if (L.post_ffn_norm) {
      OMNI_RETURN_IF_ERROR(mm(L.down, I.ffn_a, I.tmp, n, nullptr, false, "ffn_down"));
      OMNI_RETURN_IF_ERROR(norm(I.tmp, nullptr, nullptr, L.post_ffn_norm, I.tmp, n, d));
      OMNI_RETURN_IF_ERROR(done(cuda::launch_add({I.x, I.tmp, I.x, n * d}, s), "residual add"));
    } else {
      OMNI_RETURN_IF_ERROR(mm(L.down, I.ffn_a, I.x, n, nullptr, true, "ffn_down"));
    }
  }
  const int64_t first = (batch_decode || all_logits) ? 0 : n - 1, rows = n - first;
  OMNI_RETURN_IF_ERROR(norm(I.x + first * d, nullptr, nullptr, I.output_norm, I.xn, rows, d));
  if (hidden_only_) return Status::Ok();  // eval_embeddings_hidden: xn holds the hidden state
  OMNI_RETURN_IF_ERROR(mm(I.output, I.xn, I.logits, rows, nullptr, false, "output"));
  if (hp.final_logit_softcap > 0.0f) {
    OMNI_RETURN_IF_ERROR(
        done(cuda::launch_scale({I.logits, rows * n_vocab_, 1.0f, hp.final_logit_softcap}, s), "softcap"));
  }
  if (batch_decode) {
    OMNI_RETURN_IF_ERROR(done(cuda::launch_argmax({I.logits, I.d_next, rows, n_vocab_}, s), "argmax"));
  }
  return Status::Ok();
}

Status CudaContext::eval(std::span<const int32_t> tokens, bool all_logits) {
  OMNI_RETURN_IF_ERROR(check_eval_input(tokens, seq_past_[0], n_ctx_, n_vocab_));
  return eval_rows(tokens.data(), nullptr, static_cast<int64_t>(tokens.size()), all_logits);
}

Status CudaContext::eval_embeddings(const float* embd, int64_t n, bool all_logits) {
  OMNI_RETURN_IF_ERROR(check_embedding_input(embd, n, model_->hparams().n_embd, seq_past_[0], n_ctx_));
  if (n == 1) return eval_embedding_step(embd, false);
  return eval_rows(nullptr, embd, n, all_logits);
}

Status CudaContext::eval_embedding_step(const float* row, bool hidden_only) {
  Impl& I = *impl_;
  cudaStream_t s = I.stream.get();
  const int64_t d = model_->hparams().n_embd;
  std::memcpy(I.h_embd, row, size_t(d) * sizeof(float));
  I.h_bpos[0] = static_cast<int32_t>(seq_past_[0]);
  // Row and position in, forward (sequence 0 as a one-sequence decode step), logits or not.
  auto enqueue = [&]() -> Status {
    OMNI_RETURN_IF_ERROR(cuda::cuda_status(
        cudaMemcpyAsync(I.x, I.h_embd, size_t(d) * sizeof(float), cudaMemcpyHostToDevice, s), "copy embedding row"));
    OMNI_RETURN_IF_ERROR(
        cuda::cuda_status(cudaMemcpyAsync(I.d_pos, I.h_bpos, 4, cudaMemcpyHostToDevice, s), "copy positions"));
    embd_input_ = true;
    hidden_only_ = hidden_only;
    Status st = run_step(1, /*batch_decode=*/true, true, false);
    embd_input_ = false;
    hidden_only_ = false;
    return st;
  };
  bool ran = false;
  if (options_.use_graphs && graph_error_.empty() && !op_hook_) {
    cudaGraphExec_t& exec = I.embd_graphs[hidden_only ? 1 : 0];
    if (!exec) {
      if (Status st = capture_graph(s, enqueue, &exec); !st.ok()) graph_error_ = st.message();
    }
    if (exec) {
      OMNI_RETURN_IF_ERROR(cuda::cuda_status(cudaGraphLaunch(exec, s), "graph launch"));
      ran = true;
    }
  }
  if (!ran) OMNI_RETURN_IF_ERROR(enqueue());
  if (!hidden_only) {
    OMNI_RETURN_IF_ERROR(cuda::cuda_status(
        cudaMemcpyAsync(logits_.data(), I.logits, size_t(n_vocab_) * 4, cudaMemcpyDeviceToHost, s), "copy logits"));
  }
  OMNI_RETURN_IF_ERROR(I.stream.synchronize());
  ++seq_past_[0];
  n_logit_rows_ = hidden_only ? 0 : 1;
  hidden_row_ = 0;
  hidden_valid_ = true;
  return Status::Ok();
}

Status CudaContext::eval_embeddings_hidden(const float* embd, int64_t n) {
  OMNI_RETURN_IF_ERROR(check_embedding_input(embd, n, model_->hparams().n_embd, seq_past_[0], n_ctx_));
  if (n == 1) return eval_embedding_step(embd, true);
  hidden_only_ = true;
  Status st = eval_rows(nullptr, embd, n, false);
  hidden_only_ = false;
  return st;
}

Status CudaContext::set_extra_outputs(std::span<const Weight> mats) {
  OMNI_RETURN_IF_ERROR(check_extra_outputs(mats, model_->hparams().n_embd));
  Impl& I = *impl_;
  bool same = mats.size() == I.extra.size();
  for (size_t i = 0; same && i < mats.size(); ++i) {
    const DevWeight& w = I.extra[i].w;
    same = I.extra[i].host == mats[i].data && w.type == mats[i].type && w.n_in == mats[i].n_in &&
           w.n_out == mats[i].n_out;
  }
  if (same) return Status::Ok();
  for (size_t i = 0; i < mats.size(); ++i)
    if (!cuda::weight_type_supported(mats[i].type))
      return unsupported(fmt("extra output matrix %zu has type %s, which has no CUDA kernel", i, dtype_name(mats[i].type)));
  OMNI_RETURN_IF_ERROR(I.stream.synchronize());  // nothing in flight reads the old set
  I.extra.clear();
  I.extra_off.clear();
  I.extra_out = nullptr;
  I.extra_arena = cuda::DeviceArena();
  I.extra_pinned = cuda::PinnedBuffer();
  const std::vector<int64_t> off = extra_output_offsets(mats);
  size_t total = round_up(size_t(off.back()) * sizeof(float), 256);
  for (const Weight& w : mats) total += round_up(static_cast<size_t>(dtype_row_bytes(w.type, w.n_in) * w.n_out), 256);
  OMNI_ASSIGN_OR_RETURN(cuda::DeviceArena arena, cuda::DeviceArena::create(total));
  OMNI_ASSIGN_OR_RETURN(cuda::PinnedBuffer pinned, cuda::PinnedBuffer::create(size_t(off.back()) * sizeof(float)));
  std::vector<Impl::Extra> extra;
  for (const Weight& w : mats) {
    const size_t bytes = static_cast<size_t>(dtype_row_bytes(w.type, w.n_in) * w.n_out);
    OMNI_ASSIGN_OR_RETURN(void* p, arena.alloc(bytes));
    OMNI_RETURN_IF_ERROR(
        cuda::cuda_status(cudaMemcpy(p, w.data, bytes, cudaMemcpyHostToDevice), "upload extra output matrices"));
    extra.push_back({w.data, DevWeight{w.type, p, w.n_in, w.n_out}});
  }
  OMNI_ASSIGN_OR_RETURN(float* out, arena.alloc_array<float>(size_t(off.back())));
  I.extra_arena = std::move(arena);
  I.extra_pinned = std::move(pinned);
  I.extra = std::move(extra);
  I.extra_off = off;
  I.extra_out = out;
  return Status::Ok();
}

Status CudaContext::run_extra_outputs(const int32_t* which, int32_t n, float* out) {
  Impl& I = *impl_;
  if (I.extra.empty()) return wrong_state("run_extra_outputs() before set_extra_outputs()");
  if (!hidden_valid_) return wrong_state("the context has no hidden state (evaluate a prompt first)");
  OMNI_RETURN_IF_ERROR(check_extra_output_ids(which, n, I.extra.size()));
  if (n > kMaxExtraOutputs) return invalid_argument(fmt("%d extra outputs at once (at most %d)", n, kMaxExtraOutputs));
  if (n == 0) return Status::Ok();
  if (!out) return invalid_argument("run_extra_outputs: no output buffer");
  cudaStream_t s = I.stream.get();
  const int64_t d = model_->hparams().n_embd;
  const float* hidden = I.xn + hidden_row_ * d;
  // Up to 3 matvecs per launch when they share type and width (the heads always do).
  int64_t lo = INT64_MAX, hi = 0;  // the span of outputs to copy back
  for (int32_t a = 0; a < n;) {
    cuda::MatvecParams p[3];
    int k = 0;
    while (a < n && k < 3) {
      const size_t i = static_cast<size_t>(which[a]);
      const DevWeight& w = I.extra[i].w;
      if (k > 0 && (w.type != p[0].w_type || w.n_in != p[0].n_in)) break;
      p[k].w_type = w.type;
      p[k].w = w.data;
      p[k].x = hidden;
      p[k].y = I.extra_out + I.extra_off[i];
      p[k].n_out = w.n_out;
      p[k].n_in = w.n_in;
      p[k].n_tok = 1;
      lo = std::min(lo, I.extra_off[i]);
      hi = std::max(hi, I.extra_off[i + 1]);
      ++k;
      ++a;
    }
    for (int j = 0; j < k; ++j) OMNI_RETURN_IF_ERROR(cuda::check_params(p[j]));
    OMNI_RETURN_IF_ERROR(launched(cuda::launch_matvecs(p, k, s), "extra output matvec"));
  }
  float* staged = I.extra_pinned.as<float>();
  OMNI_RETURN_IF_ERROR(cuda::cuda_status(cudaMemcpyAsync(staged + lo, I.extra_out + lo, size_t(hi - lo) * sizeof(float),
                                                         cudaMemcpyDeviceToHost, s),
                                         "copy extra outputs"));
  OMNI_RETURN_IF_ERROR(I.stream.synchronize());
  for (int32_t a = 0; a < n; ++a) {
    const size_t i = static_cast<size_t>(which[a]);
    std::memcpy(out + I.extra_off[i], staged + I.extra_off[i], size_t(I.extra[i].w.n_out) * sizeof(float));
  }
  return Status::Ok();
}

Status CudaContext::eval_rows(const int32_t* tokens, const float* embd, int64_t n, bool all_logits) {
  const int64_t past = seq_past_[0];
  const int64_t d = model_->hparams().n_embd;
  const int64_t rows = all_logits ? n : 1;
  if (static_cast<int64_t>(logits_.size()) < rows * n_vocab_) {
    try {
      logits_.resize(static_cast<size_t>(rows * n_vocab_));
    } catch (const std::bad_alloc&) {
      return Status(StatusCode::kOutOfMemory, fmt("cannot allocate logits for %lld tokens", (long long)rows));
    }
  }
  Impl& I = *impl_;
  cudaStream_t s = I.stream.get();
  if (n == 1 && tokens) {  // a decode step: the (graph-captured) batch path with one sequence
    int32_t next = 0;
    OMNI_RETURN_IF_ERROR(decode_batch(std::span<const int32_t>(tokens, 1), std::span<int32_t>(&next, 1),
                                      /*copy_logits=*/true));
    return Status::Ok();
  }
  for (int64_t i = 0; i < n; ++i) {
    if (tokens) I.h_tokens[i] = tokens[i];
    I.h_pos[i] = static_cast<int32_t>(past + i);
  }
  const int64_t nb = params_.n_batch;
  for (int64_t begin = 0; begin < n; begin += nb) {
    const int64_t len = std::min(nb, n - begin);
    const bool last = begin + len == n;
    if (tokens) {
      OMNI_RETURN_IF_ERROR(cuda::cuda_status(
          cudaMemcpyAsync(I.d_tokens, I.h_tokens + begin, size_t(len) * 4, cudaMemcpyHostToDevice, s), "copy tokens"));
    } else {  // pageable host rows: this copy returns once they are staged
      OMNI_RETURN_IF_ERROR(cuda::cuda_status(
          cudaMemcpyAsync(I.x, embd + begin * d, size_t(len * d) * 4, cudaMemcpyHostToDevice, s), "copy embeddings"));
    }
    OMNI_RETURN_IF_ERROR(cuda::cuda_status(
        cudaMemcpyAsync(I.d_pos, I.h_pos + begin, size_t(len) * 4, cudaMemcpyHostToDevice, s), "copy positions"));
    embd_input_ = embd != nullptr;
    Status st = run_step(len, /*batch_decode=*/false, all_logits, false);
    embd_input_ = false;
    OMNI_RETURN_IF_ERROR(st);
    if (last) hidden_row_ = all_logits ? len - 1 : 0;
    if (!hidden_only_ && (all_logits || last)) {
      float* dst = all_logits ? logits_.data() + begin * n_vocab_ : logits_.data();
      const int64_t out_rows = all_logits ? len : 1;
      OMNI_RETURN_IF_ERROR(cuda::cuda_status(cudaMemcpyAsync(dst, I.logits, size_t(out_rows * n_vocab_) * 4,
                                                             cudaMemcpyDeviceToHost, s),
                                             "copy logits"));
    }
    // The staging buffers are only rewritten by the next eval, after this synchronization.
  }
  OMNI_RETURN_IF_ERROR(I.stream.synchronize());
  seq_past_[0] = past + n;
  n_logit_rows_ = hidden_only_ ? 0 : rows;
  hidden_valid_ = true;
  return Status::Ok();
}

StatusOr<int32_t> CudaContext::decode_greedy(int32_t token) {
  int32_t next = 0;
  OMNI_RETURN_IF_ERROR(decode_batch(std::span<const int32_t>(&token, 1), std::span<int32_t>(&next, 1), false));
  return next;
}

Status CudaContext::decode_batch(std::span<const int32_t> tokens, std::span<int32_t> next, bool copy_logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n < 1 || n > options_.n_seq)
    return invalid_argument(fmt("decode_batch: %lld tokens for %d sequences", (long long)n, options_.n_seq));
  if (static_cast<int64_t>(next.size()) < n) return invalid_argument("decode_batch: `next` is shorter than `tokens`");
  OMNI_RETURN_IF_ERROR(check_token_ids(tokens, n_vocab_));
  for (int64_t i = 0; i < n; ++i) {
    if (seq_past_[size_t(i)] >= n_ctx_)
      return out_of_range(fmt("sequence %lld is full (%lld of %lld)", (long long)i, (long long)seq_past_[size_t(i)],
                              (long long)n_ctx_));
  }
  if (copy_logits && static_cast<int64_t>(logits_.size()) < n * n_vocab_) {
    try {
      logits_.resize(static_cast<size_t>(n * n_vocab_));
    } catch (const std::bad_alloc&) {
      return Status(StatusCode::kOutOfMemory, "cannot allocate logits");
    }
  }
  Impl& I = *impl_;
  cudaStream_t s = I.stream.get();
  for (int64_t i = 0; i < n; ++i) {
    I.h_btok[i] = tokens[i];
    I.h_bpos[i] = static_cast<int32_t>(seq_past_[size_t(i)]);
  }
  // The step: inputs in, forward, argmax out; captured once per batch size when graphs are on.
  auto enqueue = [&]() -> Status {
    OMNI_RETURN_IF_ERROR(cuda::cuda_status(
        cudaMemcpyAsync(I.d_tokens, I.h_btok, size_t(n) * 4, cudaMemcpyHostToDevice, s), "copy tokens"));
    OMNI_RETURN_IF_ERROR(cuda::cuda_status(
        cudaMemcpyAsync(I.d_pos, I.h_bpos, size_t(n) * 4, cudaMemcpyHostToDevice, s), "copy positions"));
    OMNI_RETURN_IF_ERROR(run_step(n, /*batch_decode=*/true, true, false));
    return cuda::cuda_status(cudaMemcpyAsync(I.h_next, I.d_next, size_t(n) * 4, cudaMemcpyDeviceToHost, s),
                             "copy argmax");
  };
  bool ran = false;
  if (options_.use_graphs && graph_error_.empty() && !op_hook_) {
    cudaGraphExec_t& exec = I.graphs[n];
    if (!exec) {
      if (Status st = capture_graph(s, enqueue, &exec); !st.ok()) graph_error_ = st.message();
    }
    if (exec) {
      OMNI_RETURN_IF_ERROR(I.step_begin.record(s));
      OMNI_RETURN_IF_ERROR(cuda::cuda_status(cudaGraphLaunch(exec, s), "graph launch"));
      ran = true;
    }
  }
  if (!ran) {
    OMNI_RETURN_IF_ERROR(I.step_begin.record(s));
    OMNI_RETURN_IF_ERROR(enqueue());
  }
  OMNI_RETURN_IF_ERROR(I.step_end.record(s));
  if (copy_logits) {
    OMNI_RETURN_IF_ERROR(cuda::cuda_status(
        cudaMemcpyAsync(logits_.data(), I.logits, size_t(n * n_vocab_) * 4, cudaMemcpyDeviceToHost, s), "copy logits"));
  }
  OMNI_RETURN_IF_ERROR(I.stream.synchronize());
  if (auto ms = cuda::Event::elapsed_ms(I.step_begin, I.step_end); ms.ok()) last_step_gpu_ms_ = *ms;
  for (int64_t i = 0; i < n; ++i) {
    next[i] = I.h_next[i];
    ++seq_past_[size_t(i)];
  }
  if (copy_logits) n_logit_rows_ = n;
  hidden_row_ = 0;  // sequence 0's row
  hidden_valid_ = true;
  return Status::Ok();
}

}  // namespace omni

#else  // !OMNIRT_HAVE_CUDA: the type exists so callers compile; create() says why it cannot work.

namespace omni {

struct CudaContext::Impl {};

StatusOr<std::unique_ptr<CudaContext>> CudaContext::create(const Model&, const ContextParams&,
                                                           const CudaContextOptions&) {
  return unsupported("omnirt was built without CUDA (configure with -DOMNIRT_CUDA=ON where nvcc exists)");
}
CudaContext::~CudaContext() = default;
Status CudaContext::eval(std::span<const int32_t>, bool) { return wrong_state("no CUDA"); }
Status CudaContext::eval_embeddings(const float*, int64_t, bool) { return wrong_state("no CUDA"); }
Status CudaContext::eval_rows(const int32_t*, const float*, int64_t, bool) { return wrong_state("no CUDA"); }
Status CudaContext::eval_embeddings_hidden(const float*, int64_t) { return wrong_state("no CUDA"); }
Status CudaContext::eval_embedding_step(const float*, bool) { return wrong_state("no CUDA"); }
Status CudaContext::set_extra_outputs(std::span<const Weight>) { return wrong_state("no CUDA"); }
Status CudaContext::run_extra_outputs(const int32_t*, int32_t, float*) { return wrong_state("no CUDA"); }
Status CudaContext::rewind(int64_t) { return wrong_state("no CUDA"); }
Status CudaContext::rewind_seq(int, int64_t) { return wrong_state("no CUDA"); }
StatusOr<int32_t> CudaContext::decode_greedy(int32_t) { return wrong_state("no CUDA"); }
Status CudaContext::decode_batch(std::span<const int32_t>, std::span<int32_t>, bool) { return wrong_state("no CUDA"); }
Status CudaContext::run_step(int64_t, bool, bool, bool) { return wrong_state("no CUDA"); }
bool CudaContext::has_gemm() const { return false; }
bool CudaContext::prefill_fused() const { return false; }
void* CudaContext::stream_handle() const { return nullptr; }

}  // namespace omni

#endif  // OMNIRT_HAVE_CUDA

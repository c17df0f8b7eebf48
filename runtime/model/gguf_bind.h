// Binding a GGUF file's keys and tensors to the weight structs of a component loader
// (vision_loader, whisper_loader, audio_loader, snac_loader), with the messages they share:
// each names the component, the key or tensor, the value found and what was expected.
// Internal to runtime/model: the loaders' own headers stay the public surface.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/core/status.h"
#include "runtime/model/gguf.h"

namespace omni::gguf_bind {

// A u32 key within [lo, hi], else kCorruptFile "<what>: <key> = <v> is out of range [lo, hi]"
// (absent or mistyped: the getter's status).
StatusOr<int64_t> u32_in(const gguf::GgufFile& f, const char* what, const char* key, int64_t lo,
                         int64_t hi);

// Tensors by name. Dims are given in PyTorch order (outermost first); messages print shapes in
// ggml order, as TensorInfo::shape_string does.
class Binder {
 public:
  // what: the component in messages ("vision", "whisper", "snac", "audio encoder").
  // unsqueezed_vectors: a 1-D tensor [n] may be stored as [n, 1] (llama.cpp's audio converter
  // unsqueezes the conv biases).
  Binder(const gguf::GgufFile& f, const char* what, bool unsqueezed_vectors = false)
      : f_(f), what_(what), unsqueezed_vectors_(unsqueezed_vectors) {}

  const gguf::GgufFile& file() const { return f_; }
  bool has(const std::string& name) const { return f_.find_tensor(name) != nullptr; }

  // The tensor, of exactly these dims and of a type omnirt computes with (rows whole blocks).
  StatusOr<const gguf::TensorInfo*> tensor(const std::string& name,
                                           const std::vector<int64_t>& dims) const;
  // The tensor dequantized to f32, row-major.
  StatusOr<std::vector<float>> floats(const std::string& name,
                                      const std::vector<int64_t>& dims) const;

  // A weight [n_out, n_in] as a mapped view: Matrix{type, data, n_in, n_out}.
  template <class Matrix>
  StatusOr<Matrix> matrix(const std::string& name, int64_t n_out, int64_t n_in) const {
    OMNI_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, tensor(name, {n_out, n_in}));
    return Matrix{t->type, t->data, n_in, n_out};
  }
  // name.weight [n_out, n_in] and, when `bias`, name.bias [n_out] in f32.
  template <class Linear>
  StatusOr<Linear> linear(const std::string& name, int64_t n_out, int64_t n_in, bool bias) const {
    Linear l;
    OMNI_ASSIGN_OR_RETURN(l.w, (matrix<decltype(l.w)>(name + ".weight", n_out, n_in)));
    if (bias) {
      OMNI_ASSIGN_OR_RETURN(l.b, floats(name + ".bias", {n_out}));
    }
    return l;
  }
  // name.weight and name.bias, [d] each, f32.
  template <class Norm>
  StatusOr<Norm> norm(const std::string& name, int64_t d) const {
    Norm n;
    OMNI_ASSIGN_OR_RETURN(n.w, floats(name + ".weight", {d}));
    OMNI_ASSIGN_OR_RETURN(n.b, floats(name + ".bias", {d}));
    return n;
  }
  // Conv1d with kernel 3: name.weight [n_out, n_in, 3] -> Conv::w [n_out, 3, n_in] (im2col
  // order), name.bias [n_out].
  template <class Conv>
  StatusOr<Conv> conv3(const std::string& name, int64_t n_out, int64_t n_in) const {
    Conv c;
    OMNI_ASSIGN_OR_RETURN(std::vector<float> w, floats(name + ".weight", {n_out, n_in, 3}));
    OMNI_ASSIGN_OR_RETURN(c.b, floats(name + ".bias", {n_out}));
    c.n_in = n_in;
    c.n_out = n_out;
    c.w.resize(w.size());
    for (int64_t o = 0; o < n_out; ++o)
      for (int64_t i = 0; i < n_in; ++i)
        for (int64_t j = 0; j < 3; ++j) c.w[(o * 3 + j) * n_in + i] = w[(o * n_in + i) * 3 + j];
    return c;
  }

 private:
  const gguf::GgufFile& f_;
  const char* what_;
  bool unsqueezed_vectors_;
};

}  // namespace omni::gguf_bind

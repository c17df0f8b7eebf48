#include "runtime/model/gguf_bind.h"

#include "kernels/core/dtype.h"
#include "kernels/ref/ops_ref.h"

namespace omni::gguf_bind {

StatusOr<int64_t> u32_in(const gguf::GgufFile& f, const char* what, const char* key, int64_t lo,
                         int64_t hi) {
  OMNI_ASSIGN_OR_RETURN(uint32_t v, f.get_u32(key));
  if (int64_t(v) < lo || int64_t(v) > hi) {
    return corrupt_file(fmt("%s: %s = %u is out of range [%lld, %lld]", what, key, v,
                            static_cast<long long>(lo), static_cast<long long>(hi)));
  }
  return int64_t(v);
}

StatusOr<const gguf::TensorInfo*> Binder::tensor(const std::string& name,
                                                 const std::vector<int64_t>& dims) const {
  const gguf::TensorInfo* t = f_.find_tensor(name);
  if (!t) return corrupt_file(fmt("%s: tensor '%s' is missing", what_, name.c_str()));
  const size_t n = dims.size();
  bool same = t->n_dims == n;
  for (size_t i = 0; same && i < n; ++i) same = t->ne[n - 1 - i] == dims[i];
  if (!same && unsqueezed_vectors_ && n == 1 && t->n_dims == 2 && t->ne[0] == 1 &&
      t->ne[1] == dims[0]) {
    same = true;
  }
  if (!same) {
    std::string want = "[";
    for (size_t i = n; i-- > 0;) want += std::to_string(dims[i]) + (i ? ", " : "]");
    return corrupt_file(fmt("%s: tensor '%s' has shape %s, expected %s (ggml order)", what_,
                            name.c_str(), t->shape_string().c_str(), want.c_str()));
  }
  const DTypeTraits& tr = dtype_traits(t->type);
  if (!tr.supported || t->ne[0] % tr.block_size != 0) {
    return unsupported(fmt("%s: tensor '%s' has type %s, which omnirt cannot compute with", what_,
                           name.c_str(), tr.name));
  }
  return t;
}

StatusOr<std::vector<float>> Binder::floats(const std::string& name,
                                            const std::vector<int64_t>& dims) const {
  OMNI_ASSIGN_OR_RETURN(const gguf::TensorInfo* t, tensor(name, dims));
  std::vector<float> out(static_cast<size_t>(t->n_elements()));
  const int64_t row = t->ne[0], row_bytes = dtype_row_bytes(t->type, row);
  for (int64_t r = 0; r < t->n_elements() / row; ++r) {
    ref::dequantize_row(t->type, t->data + r * row_bytes, out.data() + r * row, row);
  }
  return out;
}

}  // namespace omni::gguf_bind

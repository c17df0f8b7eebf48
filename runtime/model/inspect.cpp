#include "runtime/model/inspect.h"

#include <algorithm>
#include <map>
#include <vector>

namespace omni {
namespace {

void append_padded(std::string* out, const std::string& s, size_t width) {
  out->append(s);
  if (s.size() < width) out->append(width - s.size(), ' ');
}

std::string type_column(const gguf::Value& v) {
  if (v.type != gguf::ValueType::kArray) return gguf::value_type_name(v.type);
  return std::string("array[") + gguf::value_type_name(v.elem_type) + "]";
}

const char* type_name(DType t) {
  const DTypeTraits* tr = dtype_traits(static_cast<uint32_t>(t));
  return tr ? tr->name : "?";
}

}  // namespace

std::string human_bytes(uint64_t n) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024.0 && u < 4) {
    v /= 1024.0;
    ++u;
  }
  return u == 0 ? fmt("%llu B", static_cast<unsigned long long>(n)) : fmt("%.2f %s", v, kUnits[u]);
}

std::string inspect_gguf(const gguf::GgufFile& file, bool all_tensors) {
  const auto& kv = file.metadata();
  const auto& tensors = file.tensors();
  std::string out;
  out += fmt("GGUF v%u, alignment %llu, %s (%llu bytes), %zu metadata keys, %zu tensors\n",
             file.version(), static_cast<unsigned long long>(file.alignment()),
             human_bytes(file.file_size()).c_str(), static_cast<unsigned long long>(file.file_size()),
             kv.size(), tensors.size());
  if (const gguf::Value* syn = file.find("omnirt.synthetic");
      syn && syn->type == gguf::ValueType::kBool && syn->scalar.u != 0) {
    out += "SYNTHETIC MODEL: random weights written by `omnirt model create`; its output is noise\n";
  }

  size_t key_w = 0, type_w = 0;
  for (const auto& e : kv) {
    key_w = std::max(key_w, e.key.size());
    type_w = std::max(type_w, type_column(e.value).size());
  }
  key_w = std::min<size_t>(key_w, 60);
  out += "\nmetadata:\n";
  for (const auto& e : kv) {
    out += "  ";
    append_padded(&out, e.key, key_w + 2);
    append_padded(&out, type_column(e.value), type_w + 2);
    out += e.value.to_string();
    out += '\n';
  }

  // Per type: count and bytes, in ggml type-id order.
  std::map<uint32_t, std::pair<size_t, uint64_t>> by_type;
  uint64_t total = 0;
  for (const auto& t : tensors) {
    auto& slot = by_type[static_cast<uint32_t>(t.type)];
    ++slot.first;
    slot.second += t.n_bytes;
    total += t.n_bytes;
  }
  out += "\ntensors by type:\n";
  for (const auto& [id, cb] : by_type) {
    const DTypeTraits* tr = dtype_traits(id);
    out += fmt("  %-8s %6zu tensors  %12s\n", tr ? tr->name : "?", cb.first, human_bytes(cb.second).c_str());
  }
  out += fmt("  %-8s %6zu tensors  %12s (%llu bytes)\n", "total", tensors.size(), human_bytes(total).c_str(),
             static_cast<unsigned long long>(total));

  const size_t shown = all_tensors ? tensors.size() : std::min(tensors.size(), kInspectTensorRows);
  size_t name_w = 4, shape_w = 5;
  for (size_t i = 0; i < shown; ++i) {
    name_w = std::max(name_w, tensors[i].name.size());
    shape_w = std::max(shape_w, tensors[i].shape_string().size());
  }
  out += "\ntensors:\n  ";
  append_padded(&out, "name", name_w + 2);
  append_padded(&out, "type", 8);
  append_padded(&out, "shape", shape_w + 2);
  out += fmt("%14s %14s\n", "offset", "bytes");
  for (size_t i = 0; i < shown; ++i) {
    const auto& t = tensors[i];
    out += "  ";
    append_padded(&out, t.name, name_w + 2);
    append_padded(&out, type_name(t.type), 8);
    append_padded(&out, t.shape_string(), shape_w + 2);
    out += fmt("%14llu %14llu\n", static_cast<unsigned long long>(t.offset),
               static_cast<unsigned long long>(t.n_bytes));
  }
  if (shown < tensors.size())
    out += fmt("  ... %zu more tensors (show all with --all)\n", tensors.size() - shown);
  return out;
}

}  // namespace omni

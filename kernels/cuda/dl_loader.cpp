#include "kernels/cuda/dl_loader.h"

namespace omni::cuda {

StatusOr<DlOpened> dl_open_first(std::initializer_list<const char*> stems,
                                 std::initializer_list<const char*> suffixes, const char* what) {
  static const char* const kDirs[] = {"", "/usr/local/cuda/lib64/", "/usr/local/cuda/targets/x86_64-linux/lib/",
                                      "/usr/local/cuda/targets/sbsa-linux/lib/"};
  std::string tried;
  for (const char* suffix : suffixes) {
    for (const char* dir : kDirs) {
      DlOpened group;
      for (const char* stem : stems) {
        std::string name = std::string(dir) + stem + suffix;
        void* h = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!h) {
          const char* e = dlerror();
          tried += name + ": " + (e ? e : "?") + "; ";
          break;
        }
        group.handles.push_back(h);
        group.paths.push_back(std::move(name));
      }
      if (group.handles.size() == stems.size()) return group;
      for (void* h : group.handles) dlclose(h);
    }
  }
  return unsupported(std::string(what) + " not available: " + tried);
}

}  // namespace omni::cuda

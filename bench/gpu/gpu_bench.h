// Sub-commands of omnirt_gpu_bench. Each bench/gpu/*_gpu.cpp file registers its own with
//   static const bool kReg = omni::gpu_bench::add("vit", "vit [--preset P] ...", run_vit);
// and prints its figures as RESULT lines (see gpu_bench.cpp) for bench/gpu/check.sh.
#pragma once

namespace omni::gpu_bench {

using Command = int (*)(int argc, char** argv);  // argv[0] is the sub-command's name
bool add(const char* name, const char* usage, Command run);

}  // namespace omni::gpu_bench

// Host stand-in for cufft.h (the declarations fft_loader.h names); nothing here runs an FFT.
#pragma once
#include <cuda_runtime.h>
typedef int cufftHandle;
typedef int cufftResult;
typedef int cufftType;
typedef double cufftDoubleReal;
struct cufftDoubleComplex { double x, y; };
#define CUFFT_D2Z 0x6a
cufftResult cufftPlanMany(cufftHandle*, int, int*, int*, int, int, int*, int, int, cufftType, int);
cufftResult cufftExecD2Z(cufftHandle, cufftDoubleReal*, cufftDoubleComplex*);
cufftResult cufftSetStream(cufftHandle, cudaStream_t);
cufftResult cufftDestroy(cufftHandle);
cufftResult cufftGetVersion(int*);
#define CUFFT_SUCCESS 0

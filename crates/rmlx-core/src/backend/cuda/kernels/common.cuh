// Shared by every rmlx CUDA kernel: element types, conversions and strided indexing.
// Self-contained (no CUDA headers): NVRTC compiles it without a toolkit's include folder.
#pragma once

typedef long long i64;
typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned char u8;

// 16-bit floats are stored as their bits and converted with PTX instructions (sm_80+).
struct f16_t { unsigned short bits; };
struct bf16_t { unsigned short bits; };

__device__ __forceinline__ float f16_to_f32(unsigned short h) {
  float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f;
}
__device__ __forceinline__ unsigned short f32_to_f16(float f) {
  unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
}
__device__ __forceinline__ float bf16_to_f32(unsigned short b) {
  return __uint_as_float(((unsigned)b) << 16);
}
__device__ __forceinline__ unsigned short f32_to_bf16(float f) {
  unsigned short h; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
}

// Num<T>: how an element type loads into its compute type C and stores back.
// Floats compute in f32 (as the CPU backend does); integers in their own type.
template <class T> struct Num;
template <> struct Num<float> {
  typedef float C;
  static __device__ __forceinline__ float load(float x) { return x; }
  static __device__ __forceinline__ float store(float x) { return x; }
  static __device__ __forceinline__ float to_f32(float x) { return x; }
  static __device__ __forceinline__ float from_f32(float x) { return x; }
  static __device__ __forceinline__ double to_f64(float x) { return x; }
  static __device__ __forceinline__ float from_f64(double x) { return (float)x; }
};
template <> struct Num<f16_t> {
  typedef float C;
  static __device__ __forceinline__ float load(f16_t x) { return f16_to_f32(x.bits); }
  static __device__ __forceinline__ f16_t store(float x) { f16_t r; r.bits = f32_to_f16(x); return r; }
  static __device__ __forceinline__ float to_f32(f16_t x) { return f16_to_f32(x.bits); }
  static __device__ __forceinline__ f16_t from_f32(float x) { return store(x); }
  static __device__ __forceinline__ double to_f64(f16_t x) { return f16_to_f32(x.bits); }
  static __device__ __forceinline__ f16_t from_f64(double x) { return store((float)x); }
};
template <> struct Num<bf16_t> {
  typedef float C;
  static __device__ __forceinline__ float load(bf16_t x) { return bf16_to_f32(x.bits); }
  static __device__ __forceinline__ bf16_t store(float x) { bf16_t r; r.bits = f32_to_bf16(x); return r; }
  static __device__ __forceinline__ float to_f32(bf16_t x) { return bf16_to_f32(x.bits); }
  static __device__ __forceinline__ bf16_t from_f32(float x) { return store(x); }
  static __device__ __forceinline__ double to_f64(bf16_t x) { return bf16_to_f32(x.bits); }
  static __device__ __forceinline__ bf16_t from_f64(double x) { return store((float)x); }
};
// Integer conversions follow Rust's `as` from f32/f64: truncation toward zero, saturating,
// NaN to 0 (the cvt.rzi instructions do exactly that).
#define RMLX_INT_NUM(T)                                                                   \
  template <> struct Num<T> {                                                            \
    typedef T C;                                                                         \
    static __device__ __forceinline__ T load(T x) { return x; }                          \
    static __device__ __forceinline__ T store(T x) { return x; }                         \
    static __device__ __forceinline__ float to_f32(T x) { return (float)x; }             \
    static __device__ __forceinline__ T from_f32(float x) { return rmlx_sat<T>((double)x); } \
    static __device__ __forceinline__ double to_f64(T x) { return (double)x; }           \
    static __device__ __forceinline__ T from_f64(double x) { return rmlx_sat<T>(x); }    \
  };
template <class T> __device__ __forceinline__ T rmlx_sat(double x);
template <> __device__ __forceinline__ int rmlx_sat<int>(double x) {
  if (x != x) return 0;
  if (x <= -2147483648.0) return (int)0x80000000;
  if (x >= 2147483647.0) return 2147483647;
  return (int)x;
}
template <> __device__ __forceinline__ u32 rmlx_sat<u32>(double x) {
  if (!(x > 0.0)) return 0u;
  if (x >= 4294967295.0) return 4294967295u;
  return (u32)x;
}
template <> __device__ __forceinline__ u8 rmlx_sat<u8>(double x) {
  if (!(x > 0.0)) return 0;
  if (x >= 255.0) return 255;
  return (u8)x;
}
RMLX_INT_NUM(int)
RMLX_INT_NUM(u32)
RMLX_INT_NUM(u8)

// bool is one byte, 0 or 1; from a number it is `x != 0` (NaN is true), as on the CPU.
struct bool_t { u8 v; };
template <> struct Num<bool_t> {
  typedef float C;
  static __device__ __forceinline__ float load(bool_t x) { return x.v ? 1.f : 0.f; }
  static __device__ __forceinline__ bool_t store(float x) { bool_t r; r.v = x != 0.f; return r; }
  static __device__ __forceinline__ float to_f32(bool_t x) { return load(x); }
  static __device__ __forceinline__ bool_t from_f32(float x) { return store(x); }
  static __device__ __forceinline__ double to_f64(bool_t x) { return load(x); }
  static __device__ __forceinline__ bool_t from_f64(double x) { bool_t r; r.v = x != 0.0; return r; }
};

// A strided view: element offset, shape and strides (in elements), up to 8 dims.
// Mirrors `backend::cuda::launch::Layout` on the Rust side.
#define RMLX_MAX_DIMS 8
struct Layout {
  int ndim;
  int pad;
  i64 offset;
  i64 shape[RMLX_MAX_DIMS];
  i64 strides[RMLX_MAX_DIMS];
};

// The element offset of the i-th element (row-major order) of the view.
__device__ __forceinline__ i64 layout_offset(const Layout& l, i64 i) {
  i64 off = l.offset;
  for (int d = l.ndim - 1; d >= 0; --d) {
    i64 n = l.shape[d];
    off += (i % n) * l.strides[d];
    i /= n;
  }
  return off;
}

// Grid-stride loop over n elements.
#define RMLX_FOR_EACH(i, n) \
  for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)blockDim.x * gridDim.x)

// Math shared by elementwise kernels (and, later, fused ones).
// erf as the CPU backend computes it (`backend/cpu/unary.rs`: a rational function of x, f32
// multiplies and adds only), so GELU agrees across devices.
__device__ __forceinline__ float rmlx_erf(float x) {
  x = fminf(fmaxf(x, -4.0f), 4.0f);
  const float x2 = x * x;
  float p = x2 * -2.7261423e-10f + 2.7706814e-8f;
  p = x2 * p - 2.101024e-6f;
  p = x2 * p - 5.6925064e-5f;
  p = x2 * p - 7.3499063e-4f;
  p = x2 * p - 2.9545998e-3f;
  p = x2 * p - 1.6096033e-2f;
  float q = x2 * -1.4566072e-5f - 2.1337406e-4f;
  q = x2 * q - 1.682827e-3f;
  q = x2 * q - 7.3733292e-3f;
  q = x2 * q - 1.4264739e-2f;
  return x * p / q;
}
__device__ __forceinline__ float rmlx_round_even(float x) { return rintf(x); }
// Rust's i64 div_euclid, with x / 0 = 0 as the CPU backend defines it.
__device__ __forceinline__ i64 rmlx_div_euclid(i64 a, i64 b) {
  if (b == 0) return 0;
  i64 q = a / b, r = a % b;
  if (r < 0) q = b > 0 ? q - 1 : q + 1;
  return q;
}
__device__ __forceinline__ i64 rmlx_ipow(i64 a, i64 b) {
  u64 e = b < 0 ? 0 : (b > 4294967295LL ? 4294967295ULL : (u64)b);
  u64 base = (u64)a, r = 1;
  while (e) { if (e & 1) r *= base; base *= base; e >>= 1; }
  return (i64)r;
}


// 8 consecutive elements as f32, read as 16-byte vectors: p must be 16-byte aligned (the
// host checks the base address and the row stride before choosing a kernel that uses this).
__device__ __forceinline__ void load8(const float* p, float* v) {
  const float4 a = *(const float4*)p, b = *(const float4*)(p + 4);
  v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w;
  v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}
__device__ __forceinline__ void load8_u16(const void* p, float* v, bool bf) {
  const uint4 q = *(const uint4*)p;
  const u32 w[4] = {q.x, q.y, q.z, q.w};
#pragma unroll
  for (int t = 0; t < 4; ++t) {
    const unsigned short lo = (unsigned short)(w[t] & 0xffffu), hi = (unsigned short)(w[t] >> 16);
    v[2 * t] = bf ? bf16_to_f32(lo) : f16_to_f32(lo);
    v[2 * t + 1] = bf ? bf16_to_f32(hi) : f16_to_f32(hi);
  }
}
__device__ __forceinline__ void load8(const bf16_t* p, float* v) { load8_u16(p, v, true); }
__device__ __forceinline__ void load8(const f16_t* p, float* v) { load8_u16(p, v, false); }


// Decode-sized matmul: y (M, N) = x (M, K) · Wᵀ for W (N, K) row-major, M ≤ GEMV_MAX_M, in f32
// straight from W's stored dtype (the bytes of W are the cost: each is read once, 16 at a time).
// The Rust side (matmul.rs) defines TX, TW, TO.
#define GEMV_MAX_M 8
#define GEMV_WARPS 4

template <class T> struct Vec16;  // 16 bytes of T, widened to f32
template <> struct Vec16<float> {
  static const int N = 4;
  static __device__ __forceinline__ void load(const float* p, float* out) {
    float4 v = *reinterpret_cast<const float4*>(p);
    out[0] = v.x; out[1] = v.y; out[2] = v.z; out[3] = v.w;
  }
};
template <> struct Vec16<bf16_t> {
  static const int N = 8;
  static __device__ __forceinline__ void load(const bf16_t* p, float* out) {
    uint4 v = *reinterpret_cast<const uint4*>(p);
    unsigned w[4] = {v.x, v.y, v.z, v.w};
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = __uint_as_float(w[i] << 16);
      out[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
  }
};
template <> struct Vec16<f16_t> {
  static const int N = 8;
  static __device__ __forceinline__ void load(const f16_t* p, float* out) {
    uint4 v = *reinterpret_cast<const uint4*>(p);
    unsigned w[4] = {v.x, v.y, v.z, v.w};
    for (int i = 0; i < 4; ++i) {
      out[2 * i] = f16_to_f32((unsigned short)(w[i] & 0xffffu));
      out[2 * i + 1] = f16_to_f32((unsigned short)(w[i] >> 16));
    }
  }
};

// One warp per output column n; lanes walk K in 16-byte steps. `vec` says W's rows and x's rows
// are 16-byte aligned with K a multiple of the vector width (else a scalar loop).
extern "C" __global__ void gemv(const TX* __restrict__ x, i64 ldx, const TW* __restrict__ w, i64 ldw, TO* __restrict__ y,
     int m, i64 n, i64 k, int vec) {
  const int lane = threadIdx.x & 31;
  const i64 col = (i64)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
  if (col >= n) return;
  const TW* wr = w + col * ldw;
  float acc[GEMV_MAX_M];
  for (int r = 0; r < GEMV_MAX_M; ++r) acc[r] = 0.f;
  if (vec) {
    const int V = Vec16<TW>::N;
    for (i64 j = (i64)lane * V; j < k; j += 32 * V) {
      float wv[8];
      Vec16<TW>::load(wr + j, wv);
      for (int r = 0; r < GEMV_MAX_M; ++r) {
        if (r < m) {
          const TX* xr = x + r * ldx + j;
          float s = 0.f;
          for (int t = 0; t < V; ++t) s += wv[t] * Num<TX>::to_f32(xr[t]);
          acc[r] += s;
        }
      }
    }
  } else {
    for (i64 j = lane; j < k; j += 32) {
      const float wv = Num<TW>::to_f32(wr[j]);
      for (int r = 0; r < GEMV_MAX_M; ++r)
        if (r < m) acc[r] += wv * Num<TX>::to_f32(x[r * ldx + j]);
    }
  }
  for (int r = 0; r < GEMV_MAX_M; ++r) {
    if (r < m) {
      float v = acc[r];
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0) y[r * n + col] = Num<TO>::from_f32(v);
    }
  }
}

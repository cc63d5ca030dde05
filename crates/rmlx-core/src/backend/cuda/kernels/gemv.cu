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

// x elements j..j+n as f32: 16-byte loads when `aligned` (f32 x, rows 16-byte aligned).
template <class T> __device__ __forceinline__ void load_x(const T* p, float* o, int n, int aligned) {
  for (int t = 0; t < n; ++t) o[t] = Num<T>::to_f32(p[t]);
}
template <> __device__ __forceinline__ void load_x<float>(const float* p, float* o, int n, int aligned) {
  if (aligned) {
    for (int t = 0; t < n; t += 4) {
      float4 v = *reinterpret_cast<const float4*>(p + t);
      o[t] = v.x; o[t + 1] = v.y; o[t + 2] = v.z; o[t + 3] = v.w;
    }
  } else {
    for (int t = 0; t < n; ++t) o[t] = p[t];
  }
}

// One block per output column n; its GEMV_WARPS warps split K (so a short row or a small N
// still has enough loads in flight), each lane reading W 16 bytes at a time, and the partial
// sums meet in shared memory. `vec`: W's rows are 16-byte aligned and K a multiple of the
// vector width (else a scalar loop); `xvec`: x's rows too (f32 x read 16 bytes at a time).
extern "C" __global__ void gemv(const TX* __restrict__ x, i64 ldx, const TW* __restrict__ w, i64 ldw,
                                TO* __restrict__ y, int m, i64 n, i64 k, int vec, int xvec) {
  __shared__ float part[GEMV_WARPS][GEMV_MAX_M];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const i64 col = blockIdx.x;
  const TW* wr = w + col * ldw;
  float acc[GEMV_MAX_M];
  for (int r = 0; r < GEMV_MAX_M; ++r) acc[r] = 0.f;
  const i64 lane_id = (i64)warp * 32 + lane;
  if (vec) {
    const int V = Vec16<TW>::N;
#pragma unroll 2
    for (i64 j = lane_id * V; j < k; j += 32 * GEMV_WARPS * V) {
      float wv[8], xv[8];
      Vec16<TW>::load(wr + j, wv);
      for (int r = 0; r < GEMV_MAX_M; ++r) {
        if (r < m) {
          load_x<TX>(x + r * ldx + j, xv, V, xvec);
          float s = 0.f;
          for (int t = 0; t < V; ++t) s = fmaf(wv[t], xv[t], s);
          acc[r] += s;
        }
      }
    }
  } else {
    for (i64 j = lane_id; j < k; j += 32 * GEMV_WARPS) {
      const float wv = Num<TW>::to_f32(wr[j]);
      for (int r = 0; r < GEMV_MAX_M; ++r)
        if (r < m) acc[r] += wv * Num<TX>::to_f32(x[r * ldx + j]);
    }
  }
  for (int r = 0; r < GEMV_MAX_M; ++r) {
    if (r < m) {
      float v = acc[r];
      for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0) part[warp][r] = v;
    }
  }
  __syncthreads();
  if (threadIdx.x < m) {
    float v = 0.f;
    for (int q = 0; q < GEMV_WARPS; ++q) v += part[q][threadIdx.x];
    y[threadIdx.x * n + col] = Num<TO>::from_f32(v);
  }
}

// One row of x (decode) and many columns: a warp per GEMV1_COLS columns over the whole of K
// (no shared-memory merge, no block-wide barrier), each 16-byte slice of x loaded once for
// all of the warp's columns. W's rows are 16-byte aligned and K a multiple of the vector
// width (the host checks); past the last column a warp recomputes the last one (not stored).
#define GEMV1_COLS 2
#define GEMV1_WARPS 8
extern "C" __global__ void gemv1(const TX* __restrict__ x, const TW* __restrict__ w, i64 ldw,
                                 TO* __restrict__ y, i64 n, i64 k, int xvec) {
  const int lane = threadIdx.x & 31;
  const i64 c0 = ((i64)blockIdx.x * GEMV1_WARPS + (threadIdx.x >> 5)) * GEMV1_COLS;
  if (c0 >= n) return;
  const TW* wr[GEMV1_COLS];
  float acc[GEMV1_COLS];
#pragma unroll
  for (int f = 0; f < GEMV1_COLS; ++f) {
    wr[f] = w + (c0 + f < n ? c0 + f : n - 1) * ldw;
    acc[f] = 0.f;
  }
  const int V = Vec16<TW>::N;
#pragma unroll 4
  for (i64 j = (i64)lane * V; j < k; j += 32 * V) {
    float xv[8];
    load_x<TX>(x + j, xv, V, xvec);
#pragma unroll
    for (int f = 0; f < GEMV1_COLS; ++f) {
      float wv[8];
      Vec16<TW>::load(wr[f] + j, wv);
      float s = 0.f;
      for (int t = 0; t < V; ++t) s = fmaf(wv[t], xv[t], s);
      acc[f] += s;
    }
  }
#pragma unroll
  for (int f = 0; f < GEMV1_COLS; ++f) {
    float v = acc[f];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0 && c0 + f < n) y[c0 + f] = Num<TO>::from_f32(v);
  }
}

// Reductions and row-wise ops. The Rust side (reduce.rs) defines, before this text (after
// common.cuh and rowops.cuh): TI, TO (input and output element types) and one of
//   RMLX_REDUCE (with OP_SUM / OP_PROD / OP_MAX / OP_MIN), RMLX_ARG, RMLX_SOFTMAX, RMLX_LSE,
//   RMLX_TOPK, RMLX_SWIGLU.
// Semantics follow backend/cpu/reduce.rs: sums and products accumulate in f64 (as the CPU does,
// so integer sums are exact), max/min ignore NaN (f64::max), the rest computes in f32.

#ifdef RMLX_REDUCE
#if defined(OP_SUM)
struct RedOp { __device__ __forceinline__ double operator()(double a, double b) const { return a + b; } };
#define RED_ID 0.0
#elif defined(OP_PROD)
struct RedOp { __device__ __forceinline__ double operator()(double a, double b) const { return a * b; } };
#define RED_ID 1.0
#elif defined(OP_MAX)
struct RedOp { __device__ __forceinline__ double operator()(double a, double b) const { return fmax(a, b); } };
#define RED_ID (-RMLX_F64_INF)
#else
struct RedOp { __device__ __forceinline__ double operator()(double a, double b) const { return fmin(a, b); } };
#define RED_ID RMLX_F64_INF
#endif

// acc over reduced indices j in [start, end) by `step`, of the row whose first element is `base`.
__device__ __forceinline__ double red_range(const TI* __restrict__ x, i64 base, const Layout& red,
                                            i64 start, i64 end, i64 step) {
  RedOp op;
  double acc = RED_ID;
  if (red.ndim == 1) {
    const i64 s = red.strides[0];
    for (i64 j = start; j < end; j += step) acc = op(acc, Num<TI>::to_f64(x[base + j * s]));
  } else {
    for (i64 j = start; j < end; j += step) acc = op(acc, Num<TI>::to_f64(x[base + layout_offset(red, j)]));
  }
  return acc;
}

// One block per output (rows strided by gridDim.x): the reduced elements of a row spread over
// the block's threads (coalesced when the innermost reduced axis is contiguous).
extern "C" __global__ void reduce_rows(const TI* __restrict__ x, Layout kept, Layout red,
                                       TO* __restrict__ out, i64 m, i64 r) {
  for (i64 row = blockIdx.x; row < m; row += gridDim.x) {
    double acc = red_range(x, layout_offset(kept, row), red, threadIdx.x, r, blockDim.x);
    acc = rmlx_block_reduce(acc, RedOp(), (double)RED_ID);
    if (threadIdx.x == 0) out[row] = Num<TO>::from_f64(acc);
  }
}

// One thread per output (coalesced when the innermost kept axis is contiguous: column sums).
extern "C" __global__ void reduce_cols(const TI* __restrict__ x, Layout kept, Layout red,
                                       TO* __restrict__ out, i64 m, i64 r) {
  RMLX_FOR_EACH(row, m) { out[row] = Num<TO>::from_f64(red_range(x, layout_offset(kept, row), red, 0, r, 1)); }
}

// Few outputs, long rows: block (s, row) reduces chunk s of the row into part[row * S + s].
extern "C" __global__ void reduce_partial(const TI* __restrict__ x, Layout kept, Layout red,
                                          double* __restrict__ part, i64 r, i64 chunk) {
  const i64 row = blockIdx.y, s = blockIdx.x;
  const i64 start = s * chunk, end = min(r, start + chunk);
  double acc = red_range(x, layout_offset(kept, row), red, start + threadIdx.x, end, blockDim.x);
  acc = rmlx_block_reduce(acc, RedOp(), (double)RED_ID);
  if (threadIdx.x == 0) part[row * gridDim.x + s] = acc;
}

extern "C" __global__ void reduce_finish(const double* __restrict__ part, TO* __restrict__ out, i64 m, i64 s) {
  RedOp op;
  for (i64 row = blockIdx.x; row < m; row += gridDim.x) {
    double acc = RED_ID;
    for (i64 j = threadIdx.x; j < s; j += blockDim.x) acc = op(acc, part[row * s + j]);
    acc = rmlx_block_reduce(acc, op, (double)RED_ID);
    if (threadIdx.x == 0) out[row] = Num<TO>::from_f64(acc);
  }
}
#endif

#ifdef RMLX_ARG
// argmax (SIGN = 1) / argmin (SIGN = -1, on negated values): the first index of the best value;
// NaN never wins, except that a NaN first element is the answer (as the CPU's scan from it).
struct ArgBest {
  float v;
  int i;
};
__device__ __forceinline__ bool arg_better(float v, int i, float bv, int bi) {
  return v > bv || (v == bv && i < bi);
}
struct ArgOp {
  __device__ __forceinline__ ArgBest operator()(ArgBest a, ArgBest b) const { return arg_better(b.v, b.i, a.v, a.i) ? b : a; }
};
__device__ __forceinline__ ArgBest arg_shfl(ArgBest a, int o) {
  ArgBest r;
  r.v = __shfl_xor_sync(0xffffffffu, a.v, o);
  r.i = __shfl_xor_sync(0xffffffffu, a.i, o);
  return r;
}
__device__ __forceinline__ ArgBest arg_block(ArgBest v) {
  __shared__ ArgBest smem[32];
  ArgOp op;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  for (int o = 16; o > 0; o >>= 1) v = op(v, arg_shfl(v, o));
  __syncthreads();
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  ArgBest w = smem[lane < nw ? lane : 0];
  for (int o = 16; o > 0; o >>= 1) w = op(w, arg_shfl(w, o));
  return w;
}

// One block per output: the axis (length r, stride s) of the row at layout_offset(kept, row).
extern "C" __global__ void arg_rows(const TI* __restrict__ x, Layout kept, i64 s, u32* __restrict__ out,
                                    i64 m, i64 r, float sign) {
  for (i64 row = blockIdx.x; row < m; row += gridDim.x) {
    const TI* p = x + layout_offset(kept, row);
    ArgBest b;
    b.v = sign * Num<TI>::to_f32(p[0]);
    b.i = 0;
    if (b.v != b.v) {
      if (threadIdx.x == 0) out[row] = 0;
      continue;  // uniform across the block: every thread read the same p[0]
    }
    for (i64 j = threadIdx.x; j < r; j += blockDim.x) {
      float v = sign * Num<TI>::to_f32(p[j * s]);
      if (arg_better(v, (int)j, b.v, b.i)) { b.v = v; b.i = (int)j; }
    }
    b = arg_block(b);
    if (threadIdx.x == 0) out[row] = (u32)b.i;
  }
}

// Few long rows (the logits of a decode step): the row is cut into gridDim.x chunks, each block
// finds its chunk's best (value, index) into part; arg_merge picks among the chunks. Indices
// are global, so ties still go to the first index.
extern "C" __global__ void arg_part(const TI* __restrict__ x, Layout kept, i64 s, ArgBest* __restrict__ part,
                                    i64 r, float sign) {
  const i64 row = blockIdx.y, chunks = gridDim.x;
  const i64 per = (r + chunks - 1) / chunks, lo = blockIdx.x * per, hi = lo + per < r ? lo + per : r;
  const TI* p = x + layout_offset(kept, row);
  ArgBest b;
  b.v = __int_as_float(0xff800000u);  // −inf: any non-NaN value is at least as good
  b.i = 0x7fffffff;
  for (i64 j = lo + threadIdx.x; j < hi; j += blockDim.x) {
    float v = sign * Num<TI>::to_f32(p[j * s]);
    if (arg_better(v, (int)j, b.v, b.i)) { b.v = v; b.i = (int)j; }
  }
  b = arg_block(b);
  if (threadIdx.x == 0) part[row * chunks + blockIdx.x] = b;
}

extern "C" __global__ void arg_merge(const TI* __restrict__ x, Layout kept, const ArgBest* __restrict__ part,
                                     u32* __restrict__ out, i64 chunks, float sign) {
  const i64 row = blockIdx.x;
  const float first = sign * Num<TI>::to_f32(x[layout_offset(kept, row)]);
  ArgBest b;
  b.v = __int_as_float(0xff800000u);
  b.i = 0x7fffffff;
  for (i64 c = threadIdx.x; c < chunks; c += blockDim.x) {
    const ArgBest o = part[row * chunks + c];
    if (arg_better(o.v, o.i, b.v, b.i)) b = o;
  }
  b = arg_block(b);
  // A NaN first element is the answer (as the CPU's scan from it).
  if (threadIdx.x == 0) out[row] = first != first ? 0u : (u32)b.i;
}

// One thread per output, a sequential scan (coalesced when outputs are adjacent in memory).
extern "C" __global__ void arg_cols(const TI* __restrict__ x, Layout kept, i64 s, u32* __restrict__ out,
                                    i64 m, i64 r, float sign) {
  RMLX_FOR_EACH(row, m) {
    const TI* p = x + layout_offset(kept, row);
    float bv = sign * Num<TI>::to_f32(p[0]);
    u32 bi = 0;
    for (i64 j = 1; j < r; ++j) {
      float v = sign * Num<TI>::to_f32(p[j * s]);
      if (v > bv) { bv = v; bi = (u32)j; }
    }
    out[row] = bi;
  }
}
#endif

#ifdef RMLX_SOFTMAX
// Online max/sum per thread, merged over the block; then exp(v - max) / sum. Contiguous rows.
struct MaxSum {
  float m, s;
};
__device__ __forceinline__ MaxSum ms_merge(MaxSum a, MaxSum b) {
  MaxSum r;
  r.m = fmaxf(a.m, b.m);
  float sa = a.m == -RMLX_F32_INF ? (a.s != a.s ? a.s : 0.f) : a.s * expf(a.m - r.m);
  float sb = b.m == -RMLX_F32_INF ? (b.s != b.s ? b.s : 0.f) : b.s * expf(b.m - r.m);
  r.s = sa + sb;
  return r;
}
extern "C" __global__ void softmax_rows(const TI* __restrict__ x, TO* __restrict__ out, i64 rows, i64 d) {
  __shared__ MaxSum smem[32];
  for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
    const TI* p = x + row * d;
    MaxSum a;
    a.m = -RMLX_F32_INF;
    a.s = 0.f;
    for (i64 j = threadIdx.x; j < d; j += blockDim.x) {
      float v = Num<TI>::to_f32(p[j]);
      if (v > a.m) {
        a.s = a.s * expf(a.m - v) + 1.f;
        a.m = v;
      } else if (v != -RMLX_F32_INF) {
        a.s += expf(v - a.m);  // NaN poisons the sum, as on the CPU
      }
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    for (int o = 16; o > 0; o >>= 1) {
      MaxSum b;
      b.m = __shfl_xor_sync(0xffffffffu, a.m, o);
      b.s = __shfl_xor_sync(0xffffffffu, a.s, o);
      a = ms_merge(a, b);
    }
    __syncthreads();
    if (lane == 0) smem[warp] = a;
    __syncthreads();
    a = smem[0];
    for (int w = 1; w < nw; ++w) a = ms_merge(a, smem[w]);
    const float inv = 1.0f / a.s;
    TO* o = out + row * d;
    for (i64 j = threadIdx.x; j < d; j += blockDim.x) o[j] = Num<TO>::from_f32(expf(Num<TI>::to_f32(p[j]) - a.m) * inv);
  }
}
#endif

#ifdef RMLX_LSE
// m + ln Σ exp(v - m) with the sum in f64, ±inf when the max is infinite (CPU semantics).
extern "C" __global__ void logsumexp_rows(const TI* __restrict__ x, TO* __restrict__ out, i64 rows, i64 d) {
  for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
    const TI* p = x + row * d;
    float m = -RMLX_F32_INF;
    for (i64 j = threadIdx.x; j < d; j += blockDim.x) m = fmaxf(m, Num<TI>::to_f32(p[j]));
    m = rmlx_block_reduce(m, RmlxMaxF(), -RMLX_F32_INF);
    double s = 0.0;
    for (i64 j = threadIdx.x; j < d; j += blockDim.x) s += exp((double)(Num<TI>::to_f32(p[j]) - m));
    s = rmlx_block_reduce(s, RmlxAddD(), 0.0);
    if (threadIdx.x == 0) {
      float r = (m == RMLX_F32_INF || m == -RMLX_F32_INF) ? m : m + (float)log(s);
      out[row] = Num<TO>::from_f32(r);
    }
  }
}
#endif

#ifdef RMLX_TOPK
// k rounds of a block argmax: round t takes the best element ordered after round t-1's pick
// (larger value first, lower index on ties; NaN after every number). Contiguous rows.
__device__ __forceinline__ bool tk_before(float va, int ia, float vb, int ib) {
  if (ib < 0) return ia >= 0;
  if (ia < 0) return false;
  const bool na = va != va, nb = vb != vb;
  if (na || nb) return na == nb ? ia < ib : nb;
  return va > vb || (va == vb && ia < ib);
}
extern "C" __global__ void topk_rows(const TI* __restrict__ x, u32* __restrict__ out, i64 rows, i64 d, i64 k) {
  __shared__ float sv[32];
  __shared__ int si[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
    const TI* p = x + row * d;
    float pv = 0.f;
    int pi = -1;
    for (i64 t = 0; t < k; ++t) {
      float bv = 0.f;
      int bi = -1;
      for (i64 j = threadIdx.x; j < d; j += blockDim.x) {
        float v = Num<TI>::to_f32(p[j]);
        if ((pi < 0 || tk_before(pv, pi, v, (int)j)) && tk_before(v, (int)j, bv, bi)) { bv = v; bi = (int)j; }
      }
      for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (tk_before(ov, oi, bv, bi)) { bv = ov; bi = oi; }
      }
      __syncthreads();
      if (lane == 0) { sv[warp] = bv; si[warp] = bi; }
      __syncthreads();
      bv = sv[0];
      bi = si[0];
      for (int w = 1; w < nw; ++w)
        if (tk_before(sv[w], si[w], bv, bi)) { bv = sv[w]; bi = si[w]; }
      if (threadIdx.x == 0) out[row * k + t] = (u32)bi;
      pv = bv;
      pi = bi;
    }
  }
}
#endif

#ifdef RMLX_SWIGLU
// silu(x[…, j]) · x[…, n + j] over contiguous rows of 2n.
extern "C" __global__ void swiglu(const TI* __restrict__ x, TO* __restrict__ out, i64 rows, i64 n) {
  RMLX_FOR_EACH(i, rows * n) {
    const i64 r = i / n, j = i - r * n;
    const float g = Num<TI>::to_f32(x[r * 2 * n + j]), u = Num<TI>::to_f32(x[r * 2 * n + n + j]);
    out[i] = Num<TO>::from_f32(g / (1.0f + expf(-g)) * u);
  }
}
#endif

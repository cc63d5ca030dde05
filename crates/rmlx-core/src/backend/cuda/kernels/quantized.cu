// Quantized matmul (x · Wᵀ), expert-gathered matmul and quantized row lookup, straight from
// packed weights. Weights are dequantized in registers 8 elements at a time (`deq8`) and every
// product is computed in f32 from the exact dequantized values (no activation quantization).
//
// The Rust side (quantized.rs) defines, before this text:
//   T              the x / output element type (float, f16_t, bf16_t)
//   TS             affine scales/biases element type (affine only)
//   one FMT_* macro naming the format, and for affine BITS (2, 3, 4, 5, 6, 8)
// The weight is addressed as a table of rows (E·N rows of K elements); its parts are p0, p1,
// p2 (GGUF: p0 the rows of blocks; HF MXFP4: p0 blocks, p1 scales; affine: p0 words,
// p1 scales, p2 biases). `gs` is the affine group size (unused by the others).

struct WParts {
  const u8* p0;
  const u8* p1;
  const u8* p2;
  i64 k;
  i64 gs;
};

__device__ __forceinline__ float ld_f16(const u8* p) {
  return f16_to_f32((unsigned short)(p[0] | (p[1] << 8)));
}

// 2^(e − 128) (the E8M0 scale halved: E2M1 values are doubled to integers), exact.
__device__ __forceinline__ float e8m0_half(u8 e) {
  if (e == 0) return __uint_as_float(1u << 21);
  if (e == 1) return __uint_as_float(1u << 22);
  return __uint_as_float(((u32)e - 1u) << 23);
}

// Small integers to f32 without an int → float conversion instruction (a quarter of the FMA
// rate): q < 2^23 OR'ed into the mantissa of 2^23 reads as 2^23 + q exactly, and subtracting
// 2^23 is exact. i8: shifted to 0..255 first.
__device__ __forceinline__ float u_to_f(u32 q) {
  return __uint_as_float(0x4B000000u | q) - 8388608.f;
}
__device__ __forceinline__ float i8_to_f(int q) {
  return __uint_as_float(0x4B000000u | (u32)(q + 128)) - 8388736.f;
}

// Twice the E2M1 value of a 4-bit code, exactly, without an int → float conversion (those run
// at a quarter of the FMA rate and made the MXFP4 GEMV compute-bound): the three magnitude bits
// placed at f32 bits 24..22 (low exponent bits and top mantissa bit) and the sign at bit 31
// read as the code's value × 2^-126 for every code, the subnormal 0.5 included (NVRTC keeps
// denormals: no -ftz); × 2^127 is then exact.
__device__ __forceinline__ float e2m1_x2(u32 q) {
  return __uint_as_float(((q & 7u) << 22) | ((q & 8u) << 28)) * __uint_as_float(254u << 23);
}

// Q4_K / Q5_K packed 6-bit (scale, min) pair j of 8 (ggml's get_scale_min_k4).
__device__ __forceinline__ void scale_min_k4(int j, const u8* q, float* sc, float* m) {
  if (j < 4) {
    *sc = (float)(q[j] & 63);
    *m = (float)(q[j + 4] & 63);
  } else {
    *sc = (float)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = (float)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Elements i0..i0+8 (i0 a multiple of 8) of row `row`, dequantized exactly as the reference
// (quant/decode.rs) does: s·u + o with one rounding (zeros come out +0 as there).
__device__ __forceinline__ void deq8(const WParts& w, i64 row, i64 i0, float* v) {
#if defined(FMT_Q4_0) || defined(FMT_Q4_1) || defined(FMT_Q5_0) || defined(FMT_Q5_1) || \
    defined(FMT_Q8_0) || defined(FMT_GMXFP4)
  // 32-element blocks.
#if defined(FMT_Q4_0)
  const int bs = 18;
#elif defined(FMT_Q4_1)
  const int bs = 20;
#elif defined(FMT_Q5_0)
  const int bs = 22;
#elif defined(FMT_Q5_1)
  const int bs = 24;
#elif defined(FMT_Q8_0)
  const int bs = 34;
#else
  const int bs = 17;
#endif
  const i64 nb = w.k / 32;
  const u8* b = w.p0 + (row * nb + i0 / 32) * bs;
  const int j = (int)(i0 & 31);
#if defined(FMT_Q8_0)
  const float d = ld_f16(b);
  const signed char* qs = (const signed char*)(b + 2);
#pragma unroll
  for (int t = 0; t < 8; ++t) v[t] = d * i8_to_f(qs[j + t]);
#elif defined(FMT_GMXFP4)
  const float s = e8m0_half(b[0]), o = -12.f * s;
  const u8* qs = b + 1;
#pragma unroll
  for (int t = 0; t < 8; ++t) {
    u32 q = j < 16 ? (qs[j + t] & 0xF) : (qs[j - 16 + t] >> 4);
    v[t] = fmaf(s, e2m1_x2(q) + 12.f, o);
  }
#else
  const float d = ld_f16(b);
#if defined(FMT_Q4_1) || defined(FMT_Q5_1)
  const float m = ld_f16(b + 2);
  const u8* after = b + 4;
#else
  const u8* after = b + 2;
#endif
#if defined(FMT_Q5_0) || defined(FMT_Q5_1)
  const u32 qh = (u32)after[0] | ((u32)after[1] << 8) | ((u32)after[2] << 16) | ((u32)after[3] << 24);
  const u8* qs = after + 4;
#else
  const u8* qs = after;
#endif
#pragma unroll
  for (int t = 0; t < 8; ++t) {
    u32 q = j < 16 ? (qs[j + t] & 0xF) : (qs[j - 16 + t] >> 4);
#if defined(FMT_Q5_0) || defined(FMT_Q5_1)
    q |= ((qh >> (j + t)) & 1u) << 4;
#endif
#if defined(FMT_Q4_0)
    v[t] = fmaf(d, u_to_f(q), -8.f * d);
#elif defined(FMT_Q5_0)
    v[t] = fmaf(d, u_to_f(q), -16.f * d);
#else
    v[t] = fmaf(d, u_to_f(q), m);
#endif
  }
#endif

#elif defined(FMT_Q2_K) || defined(FMT_Q3_K) || defined(FMT_Q4_K) || defined(FMT_Q5_K) || \
    defined(FMT_Q6_K) || defined(FMT_Q8_K)
  // 256-element super-blocks.
#if defined(FMT_Q2_K)
  const int bs = 84;
#elif defined(FMT_Q3_K)
  const int bs = 110;
#elif defined(FMT_Q4_K)
  const int bs = 144;
#elif defined(FMT_Q5_K)
  const int bs = 176;
#elif defined(FMT_Q6_K)
  const int bs = 210;
#else
  const int bs = 292;
#endif
  const i64 nb = w.k / 256;
  const u8* b = w.p0 + (row * nb + i0 / 256) * bs;
  const int i = (int)(i0 & 255);  // first element in the super-block; 8 share a 16-group
#if defined(FMT_Q2_K)
  const int half = i / 128, jj = (i % 128) / 32, l = i % 32;
  const u8 sc = b[i / 16];
  const float d = ld_f16(b + 80), dmin = ld_f16(b + 82);
  const float s = d * (float)(sc & 0xF), o = -(dmin * (float)(sc >> 4));
  const u8* qs = b + 16 + half * 32 + l;
#pragma unroll
  for (int t = 0; t < 8; ++t) v[t] = fmaf(s, u_to_f((u32)((qs[t] >> (2 * jj)) & 3)), o);
#elif defined(FMT_Q3_K)
  const int half = i / 128, jj = (i % 128) / 32, l = i % 32, g = i / 16;
  const u8* sp = b + 96;
  const int low = g < 8 ? (sp[g] & 0xF) : (sp[g - 8] >> 4);
  const int high = (sp[8 + g % 4] >> (2 * (g / 4))) & 3;
  const float s = ld_f16(b + 108) * (float)((low | (high << 4)) - 32);
  const u8 mask = (u8)(1u << (half * 4 + jj));
  const u8* qs = b + 32 + half * 32 + l;
  const u8* hm = b + l;
#pragma unroll
  for (int t = 0; t < 8; ++t) {
    int q = ((qs[t] >> (2 * jj)) & 3) + ((hm[t] & mask) ? 4 : 0);
    v[t] = fmaf(s, u_to_f((u32)q), -4.f * s);
  }
#elif defined(FMT_Q4_K) || defined(FMT_Q5_K)
  const int c = i / 64, hi = (i % 64) / 32, l = i % 32;
  float sc, mn;
  scale_min_k4(2 * c + hi, b + 4, &sc, &mn);
  const float s = ld_f16(b) * sc, o = -(ld_f16(b + 2) * mn);
#if defined(FMT_Q4_K)
  const u8* qs = b + 16 + c * 32 + l;
#else
  const u8* qh = b + 16 + l;
  const u8* qs = b + 48 + c * 32 + l;
#endif
#pragma unroll
  for (int t = 0; t < 8; ++t) {
    u32 q = hi ? (qs[t] >> 4) : (qs[t] & 0xF);
#if defined(FMT_Q5_K)
    q |= ((qh[t] >> (2 * c + hi)) & 1u) << 4;
#endif
    v[t] = fmaf(s, u_to_f(q), o);
  }
#elif defined(FMT_Q6_K)
  const int half = i / 128, quarter = (i % 128) / 32, l = i % 32;
  const float s = ld_f16(b + 208) * (float)((const signed char*)(b + 192))[i / 16];
  const u8* ql = b + half * 64 + l + (quarter & 1) * 32;
  const u8* qh = b + 128 + half * 32 + l;
#pragma unroll
  for (int t = 0; t < 8; ++t) {
    int q = (quarter < 2 ? (ql[t] & 0xF) : (ql[t] >> 4)) | (((qh[t] >> (2 * quarter)) & 3) << 4);
    v[t] = fmaf(s, u_to_f((u32)q), -32.f * s);
  }
#else  // Q8_K: f32 d, 256 i8
  const float d = __uint_as_float((u32)b[0] | ((u32)b[1] << 8) | ((u32)b[2] << 16) | ((u32)b[3] << 24));
  const signed char* qs = (const signed char*)(b + 4) + i;
#pragma unroll
  for (int t = 0; t < 8; ++t) v[t] = d * i8_to_f(qs[t]);
#endif

#elif defined(FMT_MXFP4)
  // Hugging Face layout: blocks (rows, K/32, 16) low nibble = even element; scales (rows, K/32).
  // The 4 code bytes are one aligned 32-bit load (K is a multiple of 32, i0 of 8).
  const u32 q = *(const u32*)(w.p0 + (row * w.k + i0) / 2);
  const float s = e8m0_half(w.p1[row * (w.k / 32) + i0 / 32]), o = -12.f * s;
#pragma unroll
  for (int t = 0; t < 4; ++t) {
    v[2 * t] = fmaf(s, e2m1_x2((q >> (8 * t)) & 0xF) + 12.f, o);
    v[2 * t + 1] = fmaf(s, e2m1_x2((q >> (8 * t + 4)) & 0xF) + 12.f, o);
  }

#elif defined(FMT_AFFINE)
  // MLX: a little-endian bit stream per row (K·BITS/32 words), value = scale·q + bias.
  const u32* words = (const u32*)w.p0 + row * (w.k * BITS / 32);
  const i64 bit = i0 * BITS;
  const i64 wi = bit / 32;
  const int sh = (int)(bit % 32);
  unsigned long long win = words[wi];
  if (sh + 8 * BITS > 32) win |= ((unsigned long long)words[wi + 1]) << 32;
  win >>= sh;
  const i64 g = row * (w.k / w.gs) + i0 / w.gs;
  const float s = Num<TS>::to_f32(((const TS*)w.p1)[g]);
  const float o = Num<TS>::to_f32(((const TS*)w.p2)[g]);
#pragma unroll
  for (int t = 0; t < 8; ++t) v[t] = fmaf(s, u_to_f((u32)((win >> (t * BITS)) & ((1u << BITS) - 1u))), o);
#else
#error "no quantized format defined"
#endif
}

__device__ __forceinline__ float rmlx_nan() { return __uint_as_float(0x7fc00000u); }

// ---- GEMV (few rows): one warp per output feature n, for a group of R ≤ 8 rows that share
// one expert. Plain matmul: one group of all M rows (expert 0). Gather: one group per
// (row, expert) pair. Lanes stride over 8-element chunks of K, so neighbours read neighbouring
// bytes; x is read through L1 (every warp of the block reads the same rows).
#define QMV_WARPS 8
#define QMV_MAX_R 8
extern "C" __global__ void qmv(const T* __restrict__ x, const u8* p0, const u8* p1, const u8* p2,
                               T* __restrict__ out, const u32* __restrict__ idx, i64 n_feat, i64 k,
                               i64 gs, i64 rows, int gather, i64 top_k, int shared_x, i64 experts) {
  WParts w = {p0, p1, p2, k, gs};
  const int lane = threadIdx.x & 31;
  const i64 n = (i64)blockIdx.x * QMV_WARPS + (threadIdx.x >> 5);
  const i64 group = blockIdx.y;
  if (n >= n_feat) return;
  i64 e = 0;
  i64 first = group * rows;  // first output row of the group
  if (gather) {
    e = idx[first];
    if (e >= experts) {
      if (lane == 0) out[first * n_feat + n] = Num<T>::from_f32(rmlx_nan());
      return;
    }
  }
  const i64 wrow = e * n_feat + n;
  float acc[QMV_MAX_R];
#pragma unroll
  for (int r = 0; r < QMV_MAX_R; ++r) acc[r] = 0.f;
  const i64 chunks = k / 8;
  // Unrolled: several chunks' weight loads in flight per lane (decode is latency-bound here).
#pragma unroll 4
  for (i64 c = lane; c < chunks; c += 32) {
    float wv[8];
    deq8(w, wrow, c * 8, wv);
#pragma unroll
    for (int r = 0; r < QMV_MAX_R; ++r) {
      if (r < rows) {
        const i64 o = first + r;
        const i64 xr = (gather && shared_x) ? o / top_k : o;
        const T* xp = x + xr * k + c * 8;
        float a = acc[r];
#pragma unroll
        for (int t = 0; t < 8; ++t) a = fmaf(Num<T>::to_f32(xp[t]), wv[t], a);
        acc[r] = a;
      }
    }
  }
#pragma unroll
  for (int r = 0; r < QMV_MAX_R; ++r) {
    if (r < rows) {
      float a = acc[r];
#pragma unroll
      for (int m = 16; m > 0; m >>= 1) a += __shfl_xor_sync(0xffffffffu, a, m);
      if (lane == 0) out[(first + r) * n_feat + n] = Num<T>::from_f32(a);
    }
  }
}

// ---- One-row GEMV (decode's common case: one token, or one (token, expert) pair per output
// row): a warp computes QMV1_NF neighbouring features, so each 8-element slice of x, loaded
// once as 16-byte vectors, feeds QMV1_NF weight rows. blockIdx.y is the output row (plain
// matmul: the only row, expert 0; gather: the pair). x's rows are 16-byte aligned (the host
// makes sure) and K is a multiple of 8.
#define QMV1_NF 4

// Σ_t x[t]·w[row, i0 + t] for one 8-element slice (the generic path: dequantize, then dot).
__device__ __forceinline__ float qdot8(const WParts& w, i64 row, i64 i0, const float* xv) {
  float wv[8];
  deq8(w, row, i0, wv);
  float a = 0.f;
#pragma unroll
  for (int t = 0; t < 8; ++t) a = fmaf(xv[t], wv[t], a);
  return a;
}

extern "C" __global__ void qmv1(const T* __restrict__ x, const u8* p0, const u8* p1, const u8* p2,
                                T* __restrict__ out, const u32* __restrict__ idx, i64 n_feat, i64 k,
                                i64 gs, int gather, i64 top_k, int shared_x, i64 experts) {
  WParts w = {p0, p1, p2, k, gs};
  const int lane = threadIdx.x & 31;
  const i64 n0 = ((i64)blockIdx.x * QMV_WARPS + (threadIdx.x >> 5)) * QMV1_NF;
  const i64 o = blockIdx.y;
  if (n0 >= n_feat) return;
  i64 e = 0;
  if (gather) {
    e = idx[o];
    if (e >= experts) {
      if (lane < QMV1_NF && n0 + lane < n_feat) out[o * n_feat + n0 + lane] = Num<T>::from_f32(rmlx_nan());
      return;
    }
  }
  const T* xrow = x + ((gather && shared_x) ? o / top_k : o) * k;
  i64 wrow[QMV1_NF];
#pragma unroll
  for (int f = 0; f < QMV1_NF; ++f) {
    // Past the last feature a warp recomputes the last row (never stored).
    wrow[f] = e * n_feat + (n0 + f < n_feat ? n0 + f : n_feat - 1);
  }
  float acc[QMV1_NF];
#pragma unroll
  for (int f = 0; f < QMV1_NF; ++f) acc[f] = 0.f;
  const int chunks = (int)(k / 8);
#if defined(FMT_MXFP4)
  // Each 8-element slice is one 32-bit word of codes and shares one E8M0 scale (a power of
  // two): sum x·(twice the E2M1 value) first and scale once (the same products, exactly,
  // barring under/overflow). Row pointers are formed once, outside the loop.
  const u32* codes[QMV1_NF];
  const u8* scales[QMV1_NF];
#pragma unroll
  for (int f = 0; f < QMV1_NF; ++f) {
    codes[f] = (const u32*)(p0 + wrow[f] * (k / 2));
    scales[f] = p1 + wrow[f] * (k / 32);
  }
#pragma unroll 4
  for (int c = lane; c < chunks; c += 32) {
    float xv[8];
    load8(xrow + (i64)c * 8, xv);
#pragma unroll
    for (int f = 0; f < QMV1_NF; ++f) {
      const u32 q = codes[f][c];
      float a = 0.f;
#pragma unroll
      for (int t = 0; t < 8; ++t) a = fmaf(xv[t], e2m1_x2((q >> (4 * t)) & 0xF), a);
      acc[f] = fmaf(a, e8m0_half(scales[f][c >> 2]), acc[f]);
    }
  }
#else
#pragma unroll 2
  for (int c = lane; c < chunks; c += 32) {
    float xv[8];
    load8(xrow + (i64)c * 8, xv);
#pragma unroll
    for (int f = 0; f < QMV1_NF; ++f) acc[f] += qdot8(w, wrow[f], (i64)c * 8, xv);
  }
#endif
#pragma unroll
  for (int f = 0; f < QMV1_NF; ++f) {
    float a = acc[f];
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) a += __shfl_xor_sync(0xffffffffu, a, m);
    if (lane == 0 && n0 + f < n_feat) out[o * n_feat + n0 + f] = Num<T>::from_f32(a);
  }
}

// ---- Sorting (row, expert) pairs by expert for the tiled kernel (one block).
// scratch (u32): counts[E] | row_start[E+1] | tile_start[E+1] | cursor[E] | sorted[P].
// Pairs whose expert is out of range get NaN rows here and are left out of the sort.
#define QMM_BM 64
#define QMM_BN 64
#define QMM_BK 32
extern "C" __global__ void moe_sort(const u32* __restrict__ idx, u32* scratch, T* __restrict__ out,
                                    i64 pairs, i64 experts, i64 n_feat) {
  u32* counts = scratch;
  u32* row_start = counts + experts;
  u32* tile_start = row_start + experts + 1;
  u32* cursor = tile_start + experts + 1;
  u32* sorted = cursor + experts;
  for (i64 e = threadIdx.x; e < experts; e += blockDim.x) counts[e] = 0;
  __syncthreads();
  for (i64 o = threadIdx.x; o < pairs; o += blockDim.x) {
    const u32 e = idx[o];
    if (e < experts) {
      atomicAdd(&counts[e], 1u);
    } else {
      for (i64 n = 0; n < n_feat; ++n) out[o * n_feat + n] = Num<T>::from_f32(rmlx_nan());
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    u32 r = 0, t = 0;
    for (i64 e = 0; e < experts; ++e) {
      row_start[e] = r;
      tile_start[e] = t;
      cursor[e] = r;
      r += counts[e];
      t += (counts[e] + QMM_BM - 1) / QMM_BM;
    }
    row_start[experts] = r;
    tile_start[experts] = t;
  }
  __syncthreads();
  for (i64 o = threadIdx.x; o < pairs; o += blockDim.x) {
    const u32 e = idx[o];
    if (e < experts) sorted[atomicAdd(&cursor[e], 1u)] = (u32)o;
  }
}

// ---- Tiled matmul (many rows): a block computes a 64×64 tile of (rows × features); per
// 32-wide K slice, each thread dequantizes 8 weights and loads 8 x values into shared memory
// (as f32), then accumulates a 4×4 sub-tile. Plain matmul: rows are blockIdx.y's 64 rows of x
// (expert 0). Gather (scratch non-null): blockIdx.y is a tile of one expert's sorted pairs.
extern "C" __global__ void qmm(const T* __restrict__ x, const u8* p0, const u8* p1, const u8* p2, T* __restrict__ out,
        const u32* __restrict__ scratch, i64 n_feat, i64 k, i64 gs, i64 rows, i64 top_k,
        int shared_x, i64 experts) {
  __shared__ float xs[QMM_BK][QMM_BM + 1];
  __shared__ float ws[QMM_BK][QMM_BN + 1];
  __shared__ i64 orow[QMM_BM];  // output row of each tile row, −1 when past the end
  __shared__ i64 xrow[QMM_BM];
  WParts w = {p0, p1, p2, k, gs};
  const int tid = threadIdx.x;
  const i64 n0 = (i64)blockIdx.x * QMM_BN;
  i64 e = 0;
  if (scratch) {
    const u32* row_start = scratch + experts;
    const u32* tile_start = row_start + experts + 1;
    const u32* sorted = tile_start + experts + 1 + experts;
    const u32 y = blockIdx.y;
    if (y >= tile_start[experts]) return;
    // The expert whose tiles contain y (binary search over tile_start).
    i64 lo = 0, hi = experts;  // tile_start[lo] <= y < tile_start[hi]
    while (hi - lo > 1) {
      const i64 mid = (lo + hi) / 2;
      if (tile_start[mid] <= y) lo = mid; else hi = mid;
    }
    e = lo;
    if (tid < QMM_BM) {
      const i64 r = (i64)(y - tile_start[e]) * QMM_BM + tid;
      const i64 cnt = row_start[e + 1] - row_start[e];
      if (r < cnt) {
        const i64 o = sorted[row_start[e] + r];
        orow[tid] = o;
        xrow[tid] = shared_x ? o / top_k : o;
      } else {
        orow[tid] = -1;
        xrow[tid] = -1;
      }
    }
  } else if (tid < QMM_BM) {
    const i64 o = (i64)blockIdx.y * QMM_BM + tid;
    orow[tid] = o < rows ? o : -1;
    xrow[tid] = o < rows ? o : -1;
  }
  __syncthreads();
  const int tx = tid % 16, ty = tid / 16;
  float acc[4][4];
#pragma unroll
  for (int a = 0; a < 4; ++a)
#pragma unroll
    for (int b = 0; b < 4; ++b) acc[a][b] = 0.f;
  // Loader roles: tile row lr (0..63), 8-element chunk lc (0..3) of the K slice.
  const int lr = tid / 4, lc = tid % 4;
  const i64 wn = n0 + lr;
  const i64 xr = xrow[lr];
  for (i64 k0 = 0; k0 < k; k0 += QMM_BK) {
    float v[8];
    if (wn < n_feat) {
      deq8(w, e * n_feat + wn, k0 + lc * 8, v);
    } else {
#pragma unroll
      for (int t = 0; t < 8; ++t) v[t] = 0.f;
    }
#pragma unroll
    for (int t = 0; t < 8; ++t) ws[lc * 8 + t][lr] = v[t];
    if (xr >= 0) {
      const T* xp = x + xr * k + k0 + lc * 8;
#pragma unroll
      for (int t = 0; t < 8; ++t) xs[lc * 8 + t][lr] = Num<T>::to_f32(xp[t]);
    } else {
#pragma unroll
      for (int t = 0; t < 8; ++t) xs[lc * 8 + t][lr] = 0.f;
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < QMM_BK; ++kk) {
      float xv[4], wv[4];
#pragma unroll
      for (int a = 0; a < 4; ++a) xv[a] = xs[kk][ty + 16 * a];
#pragma unroll
      for (int b = 0; b < 4; ++b) wv[b] = ws[kk][tx + 16 * b];
#pragma unroll
      for (int a = 0; a < 4; ++a)
#pragma unroll
        for (int b = 0; b < 4; ++b) acc[a][b] = fmaf(xv[a], wv[b], acc[a][b]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int a = 0; a < 4; ++a) {
    const i64 o = orow[ty + 16 * a];
    if (o < 0) continue;
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const i64 n = n0 + tx + 16 * b;
      if (n < n_feat) out[o * n_feat + n] = Num<T>::from_f32(acc[a][b]);
    }
  }
}

// ---- Row lookup: out[i, :] = dequantized row idx[i] (u32 or i32), in T. Rows out of range
// come back as NaN.
template <class IDX>
__device__ __forceinline__ void qtake_body(const WParts& w, const IDX* __restrict__ idx,
                                           T* __restrict__ out, i64 count, i64 n_rows) {
  const i64 k = w.k, chunks = k / 8;
  RMLX_FOR_EACH(c, count * chunks) {
    const i64 i = c / chunks, j = (c % chunks) * 8;
    const i64 r = (i64)idx[i];
    float v[8];
    if (r >= 0 && r < n_rows) {
      deq8(w, r, j, v);
    } else {
#pragma unroll
      for (int t = 0; t < 8; ++t) v[t] = rmlx_nan();
    }
#pragma unroll
    for (int t = 0; t < 8; ++t) out[i * k + j + t] = Num<T>::from_f32(v[t]);
  }
}
extern "C" __global__ void qtake_u32(const u8* p0, const u8* p1, const u8* p2, const u32* __restrict__ idx,
                                     T* __restrict__ out, i64 count, i64 n_rows, i64 k, i64 gs) {
  WParts w = {p0, p1, p2, k, gs};
  qtake_body<u32>(w, idx, out, count, n_rows);
}
extern "C" __global__ void qtake_i32(const u8* p0, const u8* p1, const u8* p2, const int* __restrict__ idx,
                                     T* __restrict__ out, i64 count, i64 n_rows, i64 k, i64 gs) {
  WParts w = {p0, p1, p2, k, gs};
  qtake_body<int>(w, idx, out, count, n_rows);
}

// ---- One-row GEMV on 8-bit activations (llama.cpp's MMVQ idea): the block first quantizes its
// x row into shared memory, per 32 values one scale d = max|x|/127 and q = round(x/d) (the CPU
// backend's `act.rs`, the same arithmetic), then every weight slice is decoded to int8 in
// registers and multiplied with integer dot products (dp4a). This replaces the float path's
// per-weight decode (which made the MXFP4 expert GEMV compute-bound) with ~1 instruction per
// weight. GGUF formats take one 8-bit plane (as llama.cpp and the CPU); Hugging Face MXFP4 two
// (x, then its rounding residual: transformers computes in float, so the error is ~127⁻²).
// Shared memory: PLANES·K int8 codes | PLANES·K/32 scales | K/32 (d·Σq of plane 0: the
// offsets' factor for formats with a per-block offset). blockIdx.y is the output row, as qmv1.
#if defined(FMT_MXFP4) || defined(FMT_GMXFP4) || defined(FMT_Q4_0) || defined(FMT_Q4_1) || \
    defined(FMT_Q8_0)
#if defined(FMT_MXFP4)
#define Q8_PLANES 2
#else
#define Q8_PLANES 1
#endif

struct XQ {
  const int* q;     // plane 0 as int8×4 words; plane p starts at q + p·K/4
  const float* d;   // plane p's scale of block b: d[p·nb + b]
  const float* s;   // d·Σq over block b (plane 0)
  int k4;           // K/4
  int nb;           // K/32
};

// Quantizes x[0..k) into shared memory: 8 threads per 32-block, 4 values each, every thread of
// the block taking part (the trip count is uniform, so the shuffles see whole warps).
__device__ __forceinline__ void quantize_x_shared(const T* __restrict__ x, int k, signed char* q,
                                                  float* d, float* s) {
  const int nb = k / 32, per_pass = blockDim.x / 8;
  const int g = threadIdx.x / 8, sub = threadIdx.x % 8;
  for (int b0 = 0; b0 < nb; b0 += per_pass) {
    const int b = b0 + g;
    const bool live = b < nb;
    float v[4];
#pragma unroll
    for (int t = 0; t < 4; ++t) v[t] = live ? Num<T>::to_f32(x[b * 32 + sub * 4 + t]) : 0.f;
#pragma unroll
    for (int p = 0; p < Q8_PLANES; ++p) {
      float amax = fmaxf(fmaxf(fabsf(v[0]), fabsf(v[1])), fmaxf(fabsf(v[2]), fabsf(v[3])));
#pragma unroll
      for (int m = 4; m > 0; m >>= 1) amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, m));
      const float db = amax / 127.f;
      const float id = db > 0.f ? 1.f / db : 0.f;
      int qi[4];
#pragma unroll
      for (int t = 0; t < 4; ++t) qi[t] = (int)roundf(__fmul_rn(v[t], id));
      int sum = qi[0] + qi[1] + qi[2] + qi[3];
#pragma unroll
      for (int m = 4; m > 0; m >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, m);
      if (live) {
        ((int*)(q + p * k))[b * 8 + sub] =
            (qi[0] & 0xff) | ((qi[1] & 0xff) << 8) | ((qi[2] & 0xff) << 16) | ((u32)qi[3] << 24);
        if (sub == 0) {
          d[p * nb + b] = db;
          if (p == 0) s[b] = __fmul_rn(db, (float)sum);
        }
      }
      // The next plane rounds what this one left (x − d·q, multiplied then subtracted, as
      // the CPU's loop).
#pragma unroll
      for (int t = 0; t < 4; ++t) v[t] = __fsub_rn(v[t], __fmul_rn(db, (float)qi[t]));
    }
  }
}

#if defined(FMT_MXFP4) || defined(FMT_GMXFP4)
// Eight 4-bit E2M1 codes (nibble t = code t) to their doubled values as int8, in nibble order:
// .x = codes 0..3, .y = codes 4..7. Byte permutes look each code up in a 16-entry table held in
// four registers (codes 0..7 in lo, 8..15 in hi; the sign bit then picks lo or hi).
__device__ __forceinline__ int2 e2m1_x2_i8(u32 q) {
  const u32 t0 = 0x03020100u, t1 = 0x0C080604u;  // 0 1 2 3 | 4 6 8 12
  const u32 t2 = 0xFDFEFF00u, t3 = 0xF4F8FAFCu;  // -0 -1 -2 -3 | -4 -6 -8 -12
  const u32 pick = 0x32103210u | ((q & 0x88888888u) >> 1);
  int r[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const u32 sel = q >> (16 * i);
    const u32 lo = __byte_perm(t0, t1, sel), hi = __byte_perm(t2, t3, sel);
    r[i] = (int)__byte_perm(lo, hi, pick >> (16 * i));
  }
  return make_int2(r[0], r[1]);
}
#endif

// An unaligned little-endian 32-bit word (GGUF blocks of 17, 18 or 34 bytes).
__device__ __forceinline__ u32 ld_u32_unaligned(const u8* p) {
  return (u32)p[0] | ((u32)p[1] << 8) | ((u32)p[2] << 16) | ((u32)p[3] << 24);
}

#if !defined(FMT_MXFP4)
// Σ over the 8 weights of lane chunk c of row `r` (its bytes at rp) times x, in f32 (GGUF
// formats; HF MXFP4 takes whole blocks, `q8dot32`). Chunk c lies in 32-block b = c/4; which 8
// of the block's values it holds follows the format's layout (4-bit: values 4j..4j+3 and
// 16+4j..16+4j+3 of the block, j = c%4, the low and high nibbles of one 32-bit word; Q8_0: 8
// consecutive values).
__device__ __forceinline__ float q8dot(const u8* rp, const u8* scales, int c, const XQ& xq) {
  const int b = c >> 2, j = c & 3;
#if defined(FMT_GMXFP4)
  const u8* blk = rp + b * 17;
  const int2 w = e2m1_x2_i8(ld_u32_unaligned(blk + 1 + 4 * j));
  // Nibble order is (4j, 16+4j, 4j+1, 16+4j+1, …): regroup into values 4j.. and 16+4j..
  const int lo = (int)__byte_perm((u32)w.x, (u32)w.y, 0x6420);
  const int hi = (int)__byte_perm((u32)w.x, (u32)w.y, 0x7531);
  const int s0 = __dp4a(hi, xq.q[8 * b + 4 + j], __dp4a(lo, xq.q[8 * b + j], 0));
  return e8m0_half(blk[0]) * xq.d[b] * (float)s0;
#elif defined(FMT_Q4_0) || defined(FMT_Q4_1)
#if defined(FMT_Q4_0)
  const u8* blk = rp + b * 18;
  const u32 word = (u32)((const unsigned short*)(blk + 2))[2 * j] |
                   ((u32)((const unsigned short*)(blk + 2))[2 * j + 1] << 16);
#else
  const u8* blk = rp + b * 20;
  const u32 word = ((const u32*)(blk + 4))[j];
#endif
  const int lo = (int)(word & 0x0F0F0F0Fu), hi = (int)((word >> 4) & 0x0F0F0F0Fu);
  const int s0 = __dp4a(hi, xq.q[8 * b + 4 + j], __dp4a(lo, xq.q[8 * b + j], 0));
  const float dw = ld_f16(blk);
  // The block's offset term (w = d·q + o) is added once, by its first chunk.
#if defined(FMT_Q4_0)
  const float off = j == 0 ? -8.f * dw * xq.s[b] : 0.f;
#else
  const float off = j == 0 ? ld_f16(blk + 2) * xq.s[b] : 0.f;
#endif
  return fmaf(dw * xq.d[b], (float)s0, off);
#else  // Q8_0: 34-byte blocks, 2-byte aligned codes
  const u8* blk = rp + b * 34;
  const unsigned short* h = (const unsigned short*)(blk + 2) + 4 * j;
  const int w0 = (int)((u32)h[0] | ((u32)h[1] << 16)), w1 = (int)((u32)h[2] | ((u32)h[3] << 16));
  const int s0 = __dp4a(w1, xq.q[2 * c + 1], __dp4a(w0, xq.q[2 * c], 0));
  return ld_f16(blk) * xq.d[b] * (float)s0;
#endif
}
#endif

#if defined(FMT_MXFP4)
// Σ over 32-block b of row rp (16 code bytes, one 16-byte load) times both planes of x.
__device__ __forceinline__ float q8dot32(const u8* rp, const u8* scales, int b, const XQ& xq) {
  const uint4 q = ((const uint4*)rp)[b];
  const u32 words[4] = {q.x, q.y, q.z, q.w};
  const int4* x0 = (const int4*)xq.q + 2 * b;              // plane 0: 8 words of this block
  const int4* x1 = (const int4*)(xq.q + xq.k4) + 2 * b;    // plane 1
  const int4 a0 = x0[0], a1 = x0[1], c0 = x1[0], c1 = x1[1];
  const int xa[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
  const int xc[8] = {c0.x, c0.y, c0.z, c0.w, c1.x, c1.y, c1.z, c1.w};
  int s0 = 0, s1 = 0;
#pragma unroll
  for (int t = 0; t < 4; ++t) {
    const int2 w = e2m1_x2_i8(words[t]);
    s0 = __dp4a(w.y, xa[2 * t + 1], __dp4a(w.x, xa[2 * t], s0));
    s1 = __dp4a(w.y, xc[2 * t + 1], __dp4a(w.x, xc[2 * t], s1));
  }
  return e8m0_half(scales[b]) * fmaf(xq.d[b], (float)s0, xq.d[xq.nb + b] * (float)s1);
}
#endif

// Bytes of one weight row.
__device__ __forceinline__ i64 q8_row_bytes(i64 k) {
#if defined(FMT_MXFP4)
  return k / 2;
#elif defined(FMT_GMXFP4)
  return k / 32 * 17;
#elif defined(FMT_Q4_0)
  return k / 32 * 18;
#elif defined(FMT_Q4_1)
  return k / 32 * 20;
#else
  return k / 32 * 34;
#endif
}

template <int NF>
__device__ __forceinline__ void qmv1_q8_body(const T* __restrict__ x, const u8* p0, const u8* p1,
                                             T* __restrict__ out, const u32* __restrict__ idx,
                                             i64 n_feat, i64 k, int gather, i64 top_k,
                                             int shared_x, i64 experts) {
  extern __shared__ __align__(16) unsigned char q8_smem[];
  const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
  const i64 o = blockIdx.y;
  i64 e = 0;
  if (gather) {
    e = idx[o];  // the same for the whole block: it returns together, before any barrier
    if (e >= experts) {
      const i64 n = (i64)blockIdx.x * warps * NF + threadIdx.x;
      if (threadIdx.x < warps * NF && n < n_feat) out[o * n_feat + n] = Num<T>::from_f32(rmlx_nan());
      return;
    }
  }
  const int ki = (int)k, nb = ki / 32;
  signed char* q = (signed char*)q8_smem;
  float* d = (float*)(q8_smem + Q8_PLANES * ki);
  float* s = d + Q8_PLANES * nb;
  quantize_x_shared(x + ((gather && shared_x) ? o / top_k : o) * k, ki, q, d, s);
  __syncthreads();
  const XQ xq = {(const int*)q, d, s, ki / 4, nb};
  const i64 n0 = ((i64)blockIdx.x * warps + (threadIdx.x >> 5)) * NF;
  if (n0 >= n_feat) return;
  const u8* rp[NF];
  const u8* sc[NF];
#pragma unroll
  for (int f = 0; f < NF; ++f) {
    // Past the last feature a warp recomputes the last row (never stored).
    const i64 row = e * n_feat + (n0 + f < n_feat ? n0 + f : n_feat - 1);
    rp[f] = p0 + row * q8_row_bytes(k);
    sc[f] = p1 + row * nb;  // MXFP4's E8M0 scales (unused by the other formats)
  }
  float acc[NF];
#pragma unroll
  for (int f = 0; f < NF; ++f) acc[f] = 0.f;
#if defined(FMT_MXFP4)
  // A lane takes whole 32-blocks: 16-byte loads, and a third of the scale work.
#pragma unroll 3
  for (int b = lane; b < nb; b += 32) {
#pragma unroll
    for (int f = 0; f < NF; ++f) acc[f] += q8dot32(rp[f], sc[f], b, xq);
  }
#else
  const int chunks = ki / 8;
#pragma unroll 4
  for (int c = lane; c < chunks; c += 32) {
#pragma unroll
    for (int f = 0; f < NF; ++f) acc[f] += q8dot(rp[f], sc[f], c, xq);
  }
#endif
#pragma unroll
  for (int f = 0; f < NF; ++f) {
    float a = acc[f];
#pragma unroll
    for (int m = 16; m > 0; m >>= 1) a += __shfl_xor_sync(0xffffffffu, a, m);
    if (lane == 0 && n0 + f < n_feat) out[o * n_feat + n0 + f] = Num<T>::from_f32(a);
  }
}

// One feature per warp (small N: more warps in flight) or four (x's words reused 4 times).
extern "C" __global__ void qmv1_q8_f1(const T* __restrict__ x, const u8* p0, const u8* p1,
                                      T* __restrict__ out, const u32* __restrict__ idx, i64 n_feat,
                                      i64 k, int gather, i64 top_k, int shared_x, i64 experts) {
  qmv1_q8_body<1>(x, p0, p1, out, idx, n_feat, k, gather, top_k, shared_x, experts);
}
extern "C" __global__ void qmv1_q8_f4(const T* __restrict__ x, const u8* p0, const u8* p1,
                                      T* __restrict__ out, const u32* __restrict__ idx, i64 n_feat,
                                      i64 k, int gather, i64 top_k, int shared_x, i64 experts) {
  qmv1_q8_body<4>(x, p0, p1, out, idx, n_feat, k, gather, top_k, shared_x, experts);
}
#endif

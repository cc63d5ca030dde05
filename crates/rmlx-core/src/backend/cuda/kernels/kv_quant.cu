// Quantized KV rows (kv_quant.rs), bit-for-bit with cpu/attention_quantized.rs.
// Row layout: d·bits/8 code bytes, then d/group f16 scales, then d/group f16 mins (little
// endian); value = scale·n + min. 4-bit: in each block of nb values (32, or 16 when 32 does not
// divide d), byte i holds n[i] (low nibble) and n[i + nb/2] (high nibble).
// Optional rotation: per block of n = the largest power of two dividing d, x ← H·S·x / √n
// (S the fixed ±1 signs below, H the unnormalized Walsh-Hadamard transform).
// The Rust side defines TX: the float type quantized from (RMLX_KVQ) or the exact head's type
// copied (RMLX_KV_HEAD).

#define KVQ_THREADS 128

__device__ __forceinline__ float kvq_sign(unsigned i) {
  unsigned x = i * 0x9E3779B1u;
  return ((x >> 13) & 1u) ? -1.f : 1.f;
}

// In-place unnormalized fast Walsh-Hadamard transform of each n-block of x[0..d) (shared).
__device__ __forceinline__ void kvq_fwht(float* x, int d, int n) {
  for (int h = 1; h < n; h *= 2) {
    __syncthreads();
    for (int p = threadIdx.x; p < d / 2; p += blockDim.x) {
      const int j = (p / h) * 2 * h + (p % h);
      const float a = x[j], b = x[j + h];
      x[j] = __fadd_rn(a, b);
      x[j + h] = __fsub_rn(a, b);
    }
  }
  __syncthreads();
}

__device__ __forceinline__ float kvq_half(const u8* p) {
  return f16_to_f32((unsigned short)(p[0] | (p[1] << 8)));
}

// Code c of a packed row (unsigned, as stored).
__device__ __forceinline__ int kvq_code(const u8* row, int bits, int d, int c) {
  if (bits == 8) return row[c];
  const int nb = (d % 32 == 0) ? 32 : 16;
  const int blk = c / nb, j = c % nb;
  const u8 b = row[blk * nb / 2 + j % (nb / 2)];
  return j < nb / 2 ? (b & 15) : (b >> 4);
}

#ifdef RMLX_KVQ
// One block per row: x (rows, d) contiguous → out (rows, row_bytes).
extern "C" __global__ void
kv_quantize(const TX* __restrict__ x, u8* __restrict__ out, int d, int group, int bits,
            int rotate, int n, float norm) {
  extern __shared__ float sh[];  // d values, then groups mins, groups inverse scales
  const int groups = d / group;
  float* xs = sh;
  float* gmin = sh + d;
  float* ginv = gmin + groups;
  const i64 r = blockIdx.x;
  const int rb = d * bits / 8 + groups * 4;
  const TX* xr = x + r * d;
  u8* orow = out + r * rb;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    const float v = Num<TX>::to_f32(xr[c]);
    xs[c] = rotate ? v * kvq_sign(c % n) : v;
  }
  if (rotate) {
    kvq_fwht(xs, d, n);
    for (int c = threadIdx.x; c < d; c += blockDim.x) xs[c] = __fmul_rn(xs[c], norm);
  }
  __syncthreads();
  const float levels = (float)((1u << bits) - 1u);
  const int base = d * bits / 8;
  for (int gi = threadIdx.x; gi < groups; gi += blockDim.x) {
    float lo = __int_as_float(0x7f800000), hi = __int_as_float(0xff800000);
    for (int c = gi * group; c < (gi + 1) * group; ++c) {
      lo = fminf(lo, xs[c]);
      hi = fmaxf(hi, xs[c]);
    }
    const unsigned short mn = f32_to_f16(lo);
    const unsigned short sc = f32_to_f16(__fdiv_rn(__fsub_rn(hi, lo), levels));
    const float mnf = f16_to_f32(mn), scf = f16_to_f32(sc);
    gmin[gi] = mnf;
    ginv[gi] = scf > 0.f ? __fdiv_rn(1.f, scf) : 0.f;
    orow[base + 2 * gi] = (u8)(sc & 255);
    orow[base + 2 * gi + 1] = (u8)(sc >> 8);
    orow[base + 2 * (groups + gi)] = (u8)(mn & 255);
    orow[base + 2 * (groups + gi) + 1] = (u8)(mn >> 8);
  }
  __syncthreads();
  if (bits == 8) {
    for (int c = threadIdx.x; c < d; c += blockDim.x) {
      const int gi = c / group;
      const float q = roundf(__fmul_rn(__fsub_rn(xs[c], gmin[gi]), ginv[gi]));
      orow[c] = (u8)fminf(fmaxf(q, 0.f), levels);
    }
  } else {
    const int nb = (d % 32 == 0) ? 32 : 16, half = nb / 2;
    for (int o = threadIdx.x; o < d / 2; o += blockDim.x) {
      const int c0 = (o / half) * nb + o % half, c1 = c0 + half;
      const float q0 = roundf(__fmul_rn(__fsub_rn(xs[c0], gmin[c0 / group]), ginv[c0 / group]));
      const float q1 = roundf(__fmul_rn(__fsub_rn(xs[c1], gmin[c1 / group]), ginv[c1 / group]));
      const unsigned n0 = (unsigned)fminf(fmaxf(q0, 0.f), levels);
      const unsigned n1 = (unsigned)fminf(fmaxf(q1, 0.f), levels);
      orow[o] = (u8)(n0 | (n1 << 4));
    }
  }
}

// One block per packed row (b, h, t) of (B, H, T): row bytes at b·s0 + h·s1 + t·s2; the f32
// output row goes to ((b·H + h)·t_out + head + t)·d. With a center (B, H, 1, d) f32, its row
// (b, h) is added after un-rotating.
extern "C" __global__ void
kv_dequantize(const u8* __restrict__ src, const float* __restrict__ center, float* __restrict__ out,
              int hh, int t, i64 s0, i64 s1, i64 s2, int t_out, int head, int d, int group,
              int bits, int rotate, int n, float norm) {
  extern __shared__ float sh[];
  const i64 r = blockIdx.x;
  const i64 ti = r % t, bh = r / t;
  const i64 b = bh / hh, h = bh % hh;
  const u8* row = src + b * s0 + h * s1 + ti * s2;
  const int groups = d / group, base = d * bits / 8;
  float* orow = out + (bh * t_out + head + ti) * (i64)d;
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    const int gi = c / group;
    const float s = kvq_half(row + base + 2 * gi), m = kvq_half(row + base + 2 * (groups + gi));
    sh[c] = __fadd_rn(__fmul_rn(s, (float)kvq_code(row, bits, d, c)), m);
  }
  if (rotate) kvq_fwht(sh, d, n);
  __syncthreads();
  for (int c = threadIdx.x; c < d; c += blockDim.x) {
    float v = sh[c];
    if (rotate) v = __fmul_rn(v, kvq_sign(c % n) * norm);
    if (center) v = __fadd_rn(v, center[bh * d + c]);
    orow[c] = v;
  }
}
#endif

#ifdef RMLX_KV_HEAD
// The exact head rows (B, H, head, d) contiguous, widened into slots 0..head of each (b, h) of
// out (B, H, t_out, d) f32.
extern "C" __global__ void kv_head_copy(const TX* __restrict__ src, float* __restrict__ out,
                                        int head, int t_out, int d, i64 total) {
  RMLX_FOR_EACH(i, total) {
    const i64 c = i % d, s = (i / d) % head, bh = i / ((i64)d * head);
    out[(bh * t_out + s) * d + c] = Num<TX>::to_f32(src[i]);
  }
}
#endif

// Scaled dot-product attention with positions-based causal / sliding-window masks, GQA and
// attention sinks (attention.rs). The Rust side defines, before this text:
//   TQ      element type of q and of the output
//   TK      element type of k and v
//   DV_PER  output dims per thread: ceil(Dv / SDPA_THREADS)
//
// One block per (query row, q head, batch) and key split: the scaled q row sits in shared
// memory; keys are visited in tiles of SDPA_TILE = one key per thread, each thread scoring its
// key alone (a full dot product: no per-key shuffle reductions, loads of all keys in flight at
// once); an online softmax (running max m, running denominator l) folds each tile in, and P·V
// is accumulated in f32 registers, a thread per output dim, with the tile's keys split among
// groups of threads when Dv leaves threads over (Dv = 64: two groups of 64), merged at the end.
// Masked keys get weight 0 and their V rows are not read.

#define SDPA_THREADS 128
#define SDPA_TILE SDPA_THREADS
#define SDPA_WARPS (SDPA_THREADS / 32)
#define SDPA_NEG_INF (__int_as_float(0xff800000u))

__device__ __forceinline__ float sdpa_block_max(float v, float* red, int lane, int warp) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();  // earlier readers of red are done
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float r = red[0];
#pragma unroll
  for (int w = 1; w < SDPA_WARPS; ++w) r = fmaxf(r, red[w]);
  return r;
}

__device__ __forceinline__ float sdpa_block_sum(float v, float* red, int lane, int warp) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (lane == 0) red[warp] = v;
  __syncthreads();
  float r = 0.f;
#pragma unroll
  for (int w = 0; w < SDPA_WARPS; ++w) r += red[w];
  return r;
}

extern "C" __global__ void
sdpa_rows(const TQ* __restrict__ q,        // (B, Hq, Tq, D) contiguous
          const TK* __restrict__ k,        // k[b*ksb + h*ksh + j*kst + d]
          const TK* __restrict__ v,        // v[b*vsb + h*vsh + j*vst + d]
          const int* __restrict__ qpos,    // (Tq)
          const int* __restrict__ kpos,    // (Tk)
          const float* __restrict__ sinks, // (Hq) f32, or null
          TQ* __restrict__ out,            // (B, Hq, Tq, Dv) contiguous
          i64 ksb, i64 ksh, i64 kst, i64 vsb, i64 vsh, i64 vst,
          int hq, int hkv, int tq, int tk, int d, int dv, float scale, i64 window,
          int splits, float* __restrict__ part, int vec_k) {
  extern __shared__ float q_sh[];  // d floats, then (groups − 1)·dv floats to merge groups
  __shared__ float p_sh[SDPA_TILE];
  __shared__ float red[SDPA_WARPS];
  const int i = blockIdx.x / splits, sp = blockIdx.x % splits, h = blockIdx.y, b = blockIdx.z;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int hk = h / (hq / hkv);
  const i64 row = ((i64)b * hq + h) * tq + i;

  const TQ* qrow = q + row * d;
  for (int c = tid; c < d; c += SDPA_THREADS) q_sh[c] = Num<TQ>::to_f32(qrow[c]) * scale;
  const TK* kb = k + (i64)b * ksb + (i64)hk * ksh;
  const TK* vb = v + (i64)b * vsb + (i64)hk * vsh;
  const int pi = qpos[i];
  const float sink = sinks ? sinks[h] : SDPA_NEG_INF;
  // P·V roles: `groups` groups of dv threads each take every groups-th key of a tile (one
  // group, DV_PER dims per thread, when dv > SDPA_THREADS / 2).
  const int groups = dv <= SDPA_THREADS / 2 ? SDPA_THREADS / dv : 1;
  const int g = groups > 1 ? tid / dv : 0;
  const int c0 = groups > 1 ? tid % dv : tid;
  const bool pv_on = g < groups;
  __syncthreads();  // q_sh

  // Keys of this block's split; with splits the sink joins in sdpa_combine.
  const int per = (tk + splits - 1) / splits;
  const int jlo = sp * per, jhi = jlo + per < tk ? jlo + per : tk;
  float m = splits > 1 ? SDPA_NEG_INF : sink, l = 0.f;
  float acc[DV_PER];
#pragma unroll
  for (int r = 0; r < DV_PER; ++r) acc[r] = 0.f;

  for (int j0 = jlo; j0 < jhi; j0 += SDPA_TILE) {
    const int n = jhi - j0 < SDPA_TILE ? jhi - j0 : SDPA_TILE;
    float s = SDPA_NEG_INF;
    if (tid < n) {
      const int pj = kpos[j0 + tid];
      if (pj >= 0 && pj <= pi && (window < 0 || (i64)(pi - pj) < window)) {
        const TK* kr = kb + (i64)(j0 + tid) * kst;
        float sum = 0.f;
        if (vec_k) {
          for (int c = 0; c < d; c += 8) {
            float kv[8];
            load8(kr + c, kv);
#pragma unroll
            for (int t = 0; t < 8; ++t) sum = fmaf(q_sh[c + t], kv[t], sum);
          }
        } else {
          for (int c = 0; c < d; ++c) sum = fmaf(q_sh[c], Num<TK>::to_f32(kr[c]), sum);
        }
        s = sum;
      }
    }
    const float m_new = fmaxf(m, sdpa_block_max(s, red, lane, warp));
    if (m_new == SDPA_NEG_INF) continue;  // nothing visible yet (uniform across the block)
    const float corr = expf(m - m_new);  // m = -inf: 0
    const float p = s == SDPA_NEG_INF ? 0.f : expf(s - m_new);
    p_sh[tid] = p;
    l = l * corr + sdpa_block_sum(p, red, lane, warp);  // its barriers publish p_sh
#pragma unroll
    for (int r = 0; r < DV_PER; ++r) acc[r] *= corr;
    if (pv_on) {
#pragma unroll 4
      for (int jj = g; jj < n; jj += groups) {
        const float pw = p_sh[jj];
        if (pw == 0.f) continue;  // masked: its V row may hold anything
        const TK* vr = vb + (i64)(j0 + jj) * vst;
#pragma unroll
        for (int r = 0; r < DV_PER; ++r) {
          const int c = c0 + r * SDPA_THREADS;
          if (c < dv) acc[r] = fmaf(pw, Num<TK>::to_f32(vr[c]), acc[r]);
        }
      }
    }
    m = m_new;
  }
  // Merge the key groups' accumulators (group 0 keeps the sum).
  if (groups > 1) {
    float* merge = q_sh + d;  // (groups − 1) × dv
    __syncthreads();
    if (pv_on && g > 0) merge[(g - 1) * dv + c0] = acc[0];
    __syncthreads();
    if (g == 0)
      for (int o = 1; o < groups; ++o) acc[0] += merge[(o - 1) * dv + c0];
  }
  if (g != 0 || !pv_on) return;

  if (splits > 1) {
    // Partial softmax of this split: running max, denominator, unnormalized sums.
    float* pr = part + (row * splits + sp) * (i64)(dv + 2);
    if (tid == 0) { pr[0] = m; pr[1] = l; }
#pragma unroll
    for (int r = 0; r < DV_PER; ++r) {
      const int c = c0 + r * SDPA_THREADS;
      if (c < dv) pr[2 + c] = acc[r];
    }
    return;
  }
  TQ* orow = out + row * dv;
  if (m == SDPA_NEG_INF) {
    // No visible key and no sink: the output is zeros (as the CPU defines it).
#pragma unroll
    for (int r = 0; r < DV_PER; ++r) {
      const int c = c0 + r * SDPA_THREADS;
      if (c < dv) orow[c] = Num<TQ>::from_f32(0.f);
    }
    return;
  }
  const float denom = l + (sinks ? expf(sink - m) : 0.f);
  const float inv = 1.f / denom;
#pragma unroll
  for (int r = 0; r < DV_PER; ++r) {
    const int c = c0 + r * SDPA_THREADS;
    if (c < dv) orow[c] = Num<TQ>::from_f32(acc[r] * inv);
  }
}

// Merges the splits of each row (flash-decoding): one block per output row.
extern "C" __global__ void
sdpa_combine(const float* __restrict__ part, const float* __restrict__ sinks, TQ* __restrict__ out,
             int hq, int tq, int dv, int splits) {
  const i64 row = blockIdx.x;
  const int h = (int)((row / tq) % hq);
  const float* pr = part + row * splits * (i64)(dv + 2);
  const float sink = sinks ? sinks[h] : SDPA_NEG_INF;
  float m = sink;
  for (int s = 0; s < splits; ++s) m = fmaxf(m, pr[s * (i64)(dv + 2)]);
  TQ* orow = out + row * dv;
  if (m == SDPA_NEG_INF) {
    for (int c = threadIdx.x; c < dv; c += blockDim.x) orow[c] = Num<TQ>::from_f32(0.f);
    return;
  }
  float denom = sinks ? expf(sink - m) : 0.f;
  for (int s = 0; s < splits; ++s) {
    const float ms = pr[s * (i64)(dv + 2)];
    if (ms != SDPA_NEG_INF) denom += expf(ms - m) * pr[s * (i64)(dv + 2) + 1];
  }
  const float inv = 1.f / denom;
  for (int c = threadIdx.x; c < dv; c += blockDim.x) {
    float a = 0.f;
    for (int s = 0; s < splits; ++s) {
      const float ms = pr[s * (i64)(dv + 2)];
      if (ms != SDPA_NEG_INF) a += expf(ms - m) * pr[s * (i64)(dv + 2) + 2 + c];
    }
    orow[c] = Num<TQ>::from_f32(a * inv);
  }
}

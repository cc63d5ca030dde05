// Scaled dot-product attention with positions-based causal / sliding-window masks, GQA and
// attention sinks (attention.rs). The Rust side defines, before this text:
//   TQ      element type of q and of the output
//   TK      element type of k and v
//   DV_PER  output dims per thread: ceil(Dv / SDPA_THREADS)
//
// One block per (query row, q head, batch): the scaled q row sits in shared memory, keys are
// visited in tiles of SDPA_TILE (each warp dots its keys, lanes split D), and an online softmax
// (running max m, running denominator l, f32 accumulators over Dv in registers) folds each tile
// in. Masked keys get weight 0 and their V rows are not read.

#define SDPA_THREADS 128
#define SDPA_TILE 64
#define SDPA_NEG_INF (__int_as_float(0xff800000u))

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
          int splits, float* __restrict__ part) {
  extern __shared__ float q_sh[];  // d floats
  __shared__ float s_sh[SDPA_TILE];
  __shared__ float p_sh[SDPA_TILE];
  const int i = blockIdx.x / splits, sp = blockIdx.x % splits, h = blockIdx.y, b = blockIdx.z;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nwarps = SDPA_THREADS / 32;
  const int hk = h / (hq / hkv);
  const i64 row = ((i64)b * hq + h) * tq + i;

  const TQ* qrow = q + row * d;
  for (int c = tid; c < d; c += SDPA_THREADS) q_sh[c] = Num<TQ>::to_f32(qrow[c]) * scale;
  const TK* kb = k + (i64)b * ksb + (i64)hk * ksh;
  const TK* vb = v + (i64)b * vsb + (i64)hk * vsh;
  const int pi = qpos[i];
  const float sink = sinks ? sinks[h] : SDPA_NEG_INF;

  // Keys of this block's split; with splits the sink joins in sdpa_combine.
  const int per = (tk + splits - 1) / splits;
  const int jlo = sp * per, jhi = jlo + per < tk ? jlo + per : tk;
  float m = splits > 1 ? SDPA_NEG_INF : sink, l = 0.f;
  float acc[DV_PER];
#pragma unroll
  for (int r = 0; r < DV_PER; ++r) acc[r] = 0.f;

  for (int j0 = jlo; j0 < jhi; j0 += SDPA_TILE) {
    const int n = jhi - j0 < SDPA_TILE ? jhi - j0 : SDPA_TILE;
    __syncthreads();  // q_sh written; the previous tile's s_sh/p_sh readers are done
    for (int jj = warp; jj < n; jj += nwarps) {
      const int pj = kpos[j0 + jj];
      const bool vis = pj >= 0 && pj <= pi && (window < 0 || (i64)(pi - pj) < window);
      float s = SDPA_NEG_INF;
      if (vis) {
        const TK* kr = kb + (i64)(j0 + jj) * kst;
        float sum = 0.f;
        for (int c = lane; c < d; c += 32) sum += q_sh[c] * Num<TK>::to_f32(kr[c]);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        s = sum;
      }
      if (lane == 0) s_sh[jj] = s;
    }
    __syncthreads();
    float tmax = SDPA_NEG_INF;
    for (int jj = 0; jj < n; ++jj) tmax = fmaxf(tmax, s_sh[jj]);
    const float m_new = fmaxf(m, tmax);
    if (m_new == SDPA_NEG_INF) continue;  // nothing visible yet (uniform across the block)
    const float corr = expf(m - m_new);  // m = -inf: 0
    if (tid < n) p_sh[tid] = expf(s_sh[tid] - m_new);
    __syncthreads();
    float psum = 0.f;
    for (int jj = 0; jj < n; ++jj) psum += p_sh[jj];
    l = l * corr + psum;
#pragma unroll
    for (int r = 0; r < DV_PER; ++r) acc[r] *= corr;
    for (int jj = 0; jj < n; ++jj) {
      const float p = p_sh[jj];
      if (p == 0.f) continue;  // masked (uniform)
      const TK* vr = vb + (i64)(j0 + jj) * vst;
#pragma unroll
      for (int r = 0; r < DV_PER; ++r) {
        const int c = tid + r * SDPA_THREADS;
        if (c < dv) acc[r] += p * Num<TK>::to_f32(vr[c]);
      }
    }
    m = m_new;
  }

  if (splits > 1) {
    // Partial softmax of this split: running max, denominator, unnormalized sums.
    float* pr = part + (row * splits + sp) * (i64)(dv + 2);
    if (tid == 0) { pr[0] = m; pr[1] = l; }
#pragma unroll
    for (int r = 0; r < DV_PER; ++r) {
      const int c = tid + r * SDPA_THREADS;
      if (c < dv) pr[2 + c] = acc[r];
    }
    return;
  }
  TQ* orow = out + row * dv;
  if (m == SDPA_NEG_INF) {
    // No visible key and no sink: the output is zeros (as the CPU defines it).
    for (int c = tid; c < dv; c += SDPA_THREADS) orow[c] = Num<TQ>::from_f32(0.f);
    return;
  }
  const float denom = l + (sinks ? expf(sink - m) : 0.f);
  const float inv = 1.f / denom;
#pragma unroll
  for (int r = 0; r < DV_PER; ++r) {
    const int c = tid + r * SDPA_THREADS;
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

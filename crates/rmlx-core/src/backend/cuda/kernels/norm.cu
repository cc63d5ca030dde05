// RMSNorm over contiguous rows of D (norm.rs defines TI = input/output type, TW = weight type,
// after common.cuh and rowops.cuh): y = x · (1 / sqrt(Σx²/D + eps)) · w, in f32 like the CPU.
extern "C" __global__ void rms_norm_rows(const TI* __restrict__ x, const TW* __restrict__ w,
                                         TI* __restrict__ out, i64 rows, i64 d, float eps) {
  for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
    const TI* p = x + row * d;
    float ss = 0.f;
    for (i64 j = threadIdx.x; j < d; j += blockDim.x) {
      const float v = Num<TI>::to_f32(p[j]);
      ss += v * v;
    }
    ss = rmlx_block_reduce(ss, RmlxAddF(), 0.f);
    const float r = 1.0f / sqrtf(ss / (float)d + eps);
    TI* o = out + row * d;
    for (i64 j = threadIdx.x; j < d; j += blockDim.x)
      o[j] = Num<TI>::from_f32(Num<TI>::to_f32(p[j]) * r * Num<TW>::to_f32(w[j]));
  }
}

// The same for rows of D ≤ RMS_REGS·blockDim.x (decode's one row, most models' D): each thread
// loads its elements and weights once, up front, into registers, so the row is read from
// memory once and every load is in flight together (the loop above reads x twice, in two
// dependent phases).
#define RMS_REGS 8
extern "C" __global__ void rms_norm_rows_regs(const TI* __restrict__ x, const TW* __restrict__ w,
                                              TI* __restrict__ out, i64 rows, i64 d, float eps) {
  for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
    const TI* p = x + row * d;
    float v[RMS_REGS], wv[RMS_REGS];
    float ss = 0.f;
#pragma unroll
    for (int r = 0; r < RMS_REGS; ++r) {
      const i64 j = threadIdx.x + (i64)r * blockDim.x;
      v[r] = j < d ? Num<TI>::to_f32(p[j]) : 0.f;
      wv[r] = j < d ? Num<TW>::to_f32(w[j]) : 0.f;
      ss += v[r] * v[r];
    }
    ss = rmlx_block_reduce(ss, RmlxAddF(), 0.f);
    const float rs = 1.0f / sqrtf(ss / (float)d + eps);
    TI* o = out + row * d;
#pragma unroll
    for (int r = 0; r < RMS_REGS; ++r) {
      const i64 j = threadIdx.x + (i64)r * blockDim.x;
      if (j < d) o[j] = Num<TI>::from_f32(v[r] * rs * wv[r]);
    }
  }
}

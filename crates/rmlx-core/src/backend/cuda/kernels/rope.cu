// Rotary position embedding on contiguous (…, T, D) (rope.rs defines T_ = the element type and
// HALF_SPLIT or not, after common.cuh). As backend/cpu/rope.rs: angles in f64, cos/sin scaled by
// mscale, dims < D leaves the tail as it is.

struct RopeCS { float c, s; };

// table[t * half + i] = (cos, sin)(pos[t] · inv[i]) · mscale.
extern "C" __global__ void rope_table(const float* __restrict__ inv, const int* __restrict__ pos,
                                      RopeCS* __restrict__ table, i64 t, i64 half, float mscale) {
  RMLX_FOR_EACH(i, t * half) {
    const i64 ti = i / half, fi = i - ti * half;
    const double ang = (double)pos[ti] * (double)inv[fi];
    RopeCS cs;
    cs.c = (float)cos(ang) * mscale;
    cs.s = (float)sin(ang) * mscale;
    table[i] = cs;
  }
}

// One thread per output element of rows of D; row r is token r % t.
extern "C" __global__ void rope_apply(const T_* __restrict__ x, const RopeCS* __restrict__ table,
                                      T_* __restrict__ out, i64 n, i64 t, i64 d, i64 dims) {
  const i64 half = dims / 2;
  RMLX_FOR_EACH(e, n) {
    const i64 row = e / d, j = e - row * d;
    if (j >= dims) {
      out[e] = x[e];
      continue;
    }
    const T_* p = x + row * d;
#ifdef HALF_SPLIT
    const bool second = j >= half;
    const i64 i = second ? j - half : j, a = i, b = i + half;
#else
    const bool second = (j & 1) != 0;
    const i64 i = j >> 1, a = 2 * i, b = 2 * i + 1;
#endif
    const RopeCS cs = table[(row % t) * half + i];
    const float x0 = Num<T_>::to_f32(p[a]), x1 = Num<T_>::to_f32(p[b]);
    out[e] = Num<T_>::from_f32(second ? x0 * cs.s + x1 * cs.c : x0 * cs.c - x1 * cs.s);
  }
}

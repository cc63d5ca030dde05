// Rotary position embedding on contiguous (…, T, D) (rope.rs defines T_ = the element type and
// HALF_SPLIT or not, after common.cuh). As backend/cpu/rope.rs: angles in f64, cos/sin scaled by
// mscale, dims < D leaves the tail as it is.

struct RopeCS { float c, s; };

// (cos, sin)(pos · inv) · mscale from an f64 angle, as the CPU computes it.
__device__ __forceinline__ RopeCS rope_cs(int pos, float inv, float mscale) {
  const double ang = (double)pos * (double)inv;
  RopeCS cs;
  cs.c = (float)cos(ang) * mscale;
  cs.s = (float)sin(ang) * mscale;
  return cs;
}

// table[t * half + i] = (cos, sin)(pos[t] · inv[i]) · mscale.
extern "C" __global__ void rope_table(const float* __restrict__ inv, const int* __restrict__ pos,
                                      RopeCS* __restrict__ table, i64 t, i64 half, float mscale) {
  RMLX_FOR_EACH(i, t * half) {
    const i64 ti = i / half, fi = i - ti * half;
    table[i] = rope_cs(pos[ti], inv[fi], mscale);
  }
}

// One thread per output element of rows of D; row r is token r % t. `CS(row, i)` gives the
// pair's (cos, sin).
template <class CS>
__device__ __forceinline__ void rope_rows(const T_* __restrict__ x, T_* __restrict__ out, i64 n,
                                          i64 d, i64 dims, CS cs_of) {
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
    const RopeCS cs = cs_of(row, i);
    const float x0 = Num<T_>::to_f32(p[a]), x1 = Num<T_>::to_f32(p[b]);
    out[e] = Num<T_>::from_f32(second ? x0 * cs.s + x1 * cs.c : x0 * cs.c - x1 * cs.s);
  }
}

struct RopeFromTable {
  const RopeCS* table;
  i64 t, half;
  __device__ __forceinline__ RopeCS operator()(i64 row, i64 i) const {
    return table[(row % t) * half + i];
  }
};
struct RopeDirect {
  const float* inv;
  const int* pos;
  i64 t;
  float mscale;
  __device__ __forceinline__ RopeCS operator()(i64 row, i64 i) const {
    return rope_cs(pos[row % t], inv[i], mscale);
  }
};

// Many positions (prefill): each (position, pair) angle once, in the table.
extern "C" __global__ void rope_apply(const T_* __restrict__ x, const RopeCS* __restrict__ table,
                                      T_* __restrict__ out, i64 n, i64 t, i64 d, i64 dims) {
  rope_rows(x, out, n, d, dims, RopeFromTable{table, t, dims / 2});
}

// Few positions (decode): every thread computes its own angle — one kernel instead of two;
// the f64 cos/sin per element costs less than a launch.
extern "C" __global__ void rope_direct(const T_* __restrict__ x, const float* __restrict__ inv,
                                       const int* __restrict__ pos, T_* __restrict__ out, i64 n,
                                       i64 t, i64 d, i64 dims, float mscale) {
  rope_rows(x, out, n, d, dims, RopeDirect{inv, pos, t, mscale});
}

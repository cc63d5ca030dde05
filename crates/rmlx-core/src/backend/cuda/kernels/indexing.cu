// Gather/scatter kernels (indexing.rs defines TE = an unsigned type of the element's size and
// IT = the index type, after common.cuh). Elements are moved as bits.

// Element e of the src view into the output slab of concat: row e / w, column col + e % w.
extern "C" __global__ void concat_part(const TE* __restrict__ src, Layout ls, TE* __restrict__ out, i64 n,
                                       i64 w, i64 out_row, i64 col) {
  RMLX_FOR_EACH(e, n) {
    const i64 o = e / w, r = e - o * w;
    out[o * out_row + col + r] = src[layout_offset(ls, e)];
  }
}

// out at view ld = src at view ls, element by element (slice_update's write).
extern "C" __global__ void scatter_view(const TE* __restrict__ src, Layout ls, TE* out, Layout ld, i64 n) {
  RMLX_FOR_EACH(e, n) { out[layout_offset(ld, e)] = src[layout_offset(ls, e)]; }
}

__device__ __forceinline__ TE te_zero() {
  TE z;
  z = 0;
  return z;
}

// take: out (outer, nidx, inner) from x (outer, axis_len, inner), contiguous both; an index out
// of [0, axis_len) gives zeros (the CPU reports an error; a kernel cannot without a sync).
extern "C" __global__ void take_axis(const TE* __restrict__ x, const IT* __restrict__ idx, TE* __restrict__ out,
                                     i64 n, i64 nidx, i64 inner, i64 axis_len) {
  RMLX_FOR_EACH(e, n) {
    const i64 q = e / inner, r = e - q * inner, o = q / nidx, j = q - o * nidx;
    const i64 k = (i64)idx[j];
    out[e] = (k >= 0 && k < axis_len) ? x[(o * axis_len + k) * inner + r] : te_zero();
  }
}

// take_along_axis: out and idx (outer, a_out, inner), x (outer, a_x, inner), contiguous.
extern "C" __global__ void take_along(const TE* __restrict__ x, const IT* __restrict__ idx, TE* __restrict__ out,
                                      i64 n, i64 a_out, i64 inner, i64 a_x) {
  RMLX_FOR_EACH(e, n) {
    const i64 r = e % inner, o = e / (a_out * inner);
    const i64 k = (i64)idx[e];
    out[e] = (k >= 0 && k < a_x) ? x[(o * a_x + k) * inner + r] : te_zero();
  }
}

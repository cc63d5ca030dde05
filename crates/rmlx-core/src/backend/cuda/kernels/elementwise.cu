// Elementwise kernels. The Rust side (elementwise.rs) defines, before this text:
//   TI, TO          input and output element types
//   MAP(x)          for unary kernels: the output element from one input element
//   ZIP(a, b)       for binary kernels: the output element from two input elements
// and one of RMLX_UNARY / RMLX_BINARY / RMLX_WHERE. Each op/dtype combination is its own small
// module, compiled once and cached (the same scheme `compile`'s fused kernels use).

#ifdef RMLX_UNARY
extern "C" __global__ void unary_contig(const TI* __restrict__ x, TO* __restrict__ out, i64 n) {
  RMLX_FOR_EACH(i, n) { out[i] = MAP(x[i]); }
}
extern "C" __global__ void unary_strided(const TI* __restrict__ x, Layout lx, TO* __restrict__ out, i64 n) {
  RMLX_FOR_EACH(i, n) { out[i] = MAP(x[layout_offset(lx, i)]); }
}
#endif

#ifdef RMLX_BINARY
extern "C" __global__ void binary_contig(const TI* __restrict__ a, const TI* __restrict__ b,
                                         TO* __restrict__ out, i64 n) {
  RMLX_FOR_EACH(i, n) { out[i] = ZIP(a[i], b[i]); }
}
extern "C" __global__ void binary_scalar(const TI* __restrict__ a, const TI* __restrict__ b,
                                         TO* __restrict__ out, i64 n) {
  const TI s = b[0];
  RMLX_FOR_EACH(i, n) { out[i] = ZIP(a[i], s); }
}
extern "C" __global__ void binary_strided(const TI* __restrict__ a, Layout la, const TI* __restrict__ b,
                                          Layout lb, TO* __restrict__ out, i64 n) {
  RMLX_FOR_EACH(i, n) { out[i] = ZIP(a[layout_offset(la, i)], b[layout_offset(lb, i)]); }
}
#endif

#ifdef RMLX_WHERE
extern "C" __global__ void where_strided(const bool_t* __restrict__ c, Layout lc, const TO* __restrict__ a,
                                         Layout la, const TO* __restrict__ b, Layout lb,
                                         TO* __restrict__ out, i64 n) {
  RMLX_FOR_EACH(i, n) {
    out[i] = c[layout_offset(lc, i)].v ? a[layout_offset(la, i)] : b[layout_offset(lb, i)];
  }
}
#endif

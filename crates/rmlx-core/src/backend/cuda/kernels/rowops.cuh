// Block-wide reductions shared by the row-wise families (reduce, norm): warp shuffles, then one
// value per warp through shared memory. Blocks are a multiple of 32 threads (≤ 1024).
#define RMLX_F32_INF __int_as_float(0x7f800000)
#define RMLX_F64_INF __longlong_as_double(0x7ff0000000000000LL)

template <class T, class Op>
__device__ __forceinline__ T rmlx_warp_reduce(T v, Op op) {
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The reduction of every thread's `v` (identity `id` for op), returned to every thread.
template <class T, class Op>
__device__ __forceinline__ T rmlx_block_reduce(T v, Op op, T id) {
  __shared__ T smem[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = rmlx_warp_reduce(v, op);
  __syncthreads();  // a previous call's readers are done with smem
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  T w = lane < nw ? smem[lane] : id;
  w = rmlx_warp_reduce(w, op);
  return w;
}

struct RmlxAddF { __device__ __forceinline__ float operator()(float a, float b) const { return a + b; } };
struct RmlxMaxF { __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); } };
struct RmlxAddD { __device__ __forceinline__ double operator()(double a, double b) const { return a + b; } };

//! Walking strided views: the general (slow) path of kernels whose inputs are not contiguous.

/// Calls `f` with the element offset of every index of `shape`, in row-major order.
pub fn for_each_offset(
    shape: &[usize],
    strides: &[usize],
    offset: usize,
    mut f: impl FnMut(usize),
) {
    let n: usize = shape.iter().product();
    if n == 0 {
        return;
    }
    let nd = shape.len();
    if nd == 0 {
        f(offset);
        return;
    }
    let mut idx = vec![0usize; nd];
    let mut off = offset;
    let inner = shape[nd - 1];
    let inner_stride = strides[nd - 1];
    loop {
        for i in 0..inner {
            f(off + i * inner_stride);
        }
        // advance the outer dims (odometer)
        let mut d = nd - 1;
        loop {
            if d == 0 {
                return;
            }
            d -= 1;
            idx[d] += 1;
            off += strides[d];
            if idx[d] < shape[d] {
                break;
            }
            off -= strides[d] * shape[d];
            idx[d] = 0;
        }
    }
}

/// Strides of an input broadcast to `out_shape` (0 along broadcast dims).
pub fn broadcast_strides(
    in_shape: &[usize],
    in_strides: &[usize],
    out_shape: &[usize],
) -> Vec<usize> {
    let pad = out_shape.len() - in_shape.len();
    (0..out_shape.len())
        .map(|i| {
            if i < pad || in_shape[i - pad] == 1 {
                0
            } else {
                in_strides[i - pad]
            }
        })
        .collect()
}

/// Offsets of every element of a view, row-major.
pub fn offsets(shape: &[usize], strides: &[usize], offset: usize) -> Vec<usize> {
    let mut v = Vec::with_capacity(shape.iter().product());
    for_each_offset(shape, strides, offset, |o| v.push(o));
    v
}

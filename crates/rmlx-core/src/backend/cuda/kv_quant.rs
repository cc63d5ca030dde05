//! Quantized KV rows on CUDA (`kernels/kv_quant.cu`): `QuantizeKv` and `DequantizeKv` bit for
//! bit with `cpu/attention_quantized.rs` (same group min/max, f16-rounded parameters, rounding,
//! nibble order and randomized Hadamard rotation), and `QuantizedSdpa` as dequantize kernels
//! into a temporary f32 K/V (the exact head rows first) followed by the SDPA kernel, all on the
//! GPU. (The CPU's fused kernel scores keys against an 8-bit quantized q; this path uses the
//! exact q, i.e. it is the composed reference `quantized_sdpa_reference`.)

use super::device::CudaDevice;
use super::elementwise;
use super::launch::{c_type, output, ptr_at, source, Launch};
use crate::array::Data;
use crate::backend::Arg;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::primitive::KvQuant;
use std::sync::Arc;

const BODY: &str = include_str!("kernels/kv_quant.cu");
const THREADS: u32 = 128;

fn build(kind: &str, tx: DType) -> String {
    source(&format!(
        "#define {kind}\n#define TX {}\n{BODY}",
        c_type(tx)
    ))
}

fn quant_fn(dev: &CudaDevice, tx: DType, entry: &str) -> Result<super::device::Func> {
    dev.function(&format!("kvq/{tx}"), || build("RMLX_KVQ", tx), entry)
}

/// The rotation's block (largest power of two dividing d) and its 1/√n, as the CPU computes.
fn rotation(d: usize) -> (i32, f32) {
    let n = 1usize << d.trailing_zeros();
    (n as i32, 1.0 / (n as f32).sqrt())
}

fn int(x: usize, what: &str) -> Result<i32> {
    i32::try_from(x).map_err(|_| Error::shape(format!("cuda: kv quant: {what} ({x}) exceeds i32")))
}

fn check(spec: KvQuant, d: usize) -> Result<()> {
    spec.validate(d)?;
    if (d + 2 * (d / spec.group)) * 4 > 48 * 1024 {
        return Err(Error::shape(format!(
            "cuda: kv quant: head dim {d} is too large"
        )));
    }
    Ok(())
}

pub(crate) fn quantize(
    dev: &Arc<CudaDevice>,
    spec: KvQuant,
    x: &Arg,
    shape: &[usize],
) -> Result<Data> {
    let d = *x.shape.last().unwrap_or(&0);
    let (data, out) = output(dev, shape, DType::U8)?;
    let rows = x.numel().checked_div(d).unwrap_or(0);
    if rows == 0 {
        return Ok(data);
    }
    check(spec, d)?;
    if !x.dtype.is_float() {
        return Err(Error::dtype(format!(
            "quantize_kv: expected a float input, found {}",
            x.dtype
        )));
    }
    let xc = Arg {
        data: elementwise::contiguous(dev, x)?,
        shape: x.shape.clone(),
        dtype: x.dtype,
    };
    let (n, norm) = rotation(d);
    let f = quant_fn(dev, x.dtype, "kv_quantize")?;
    let shared = ((d + 2 * (d / spec.group)) * 4) as u32;
    let mut launch = Launch::new(f, "kv_quantize");
    launch
        .arg(ptr_at(&xc, dev)?)
        .arg(out)
        .arg(int(d, "dim")?)
        .arg(int(spec.group, "group")?)
        .arg(spec.bits as i32)
        .arg(spec.rotate as i32)
        .arg(n)
        .arg(norm);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); one block per
    // row of d floats in `xc` (rows·d elements, contiguous), each writing its row_bytes(d) in
    // `out` (a fresh (rows, row_bytes) buffer); shared memory sized for d values and their
    // group parameters.
    unsafe {
        launch.run(
            dev,
            (int(rows, "rows")? as u32, 1, 1),
            (THREADS, 1, 1),
            shared,
        )?
    };
    drop(xc);
    Ok(data)
}

/// Dequantizes packed rows `x` (B, H, T, row_bytes) (any row-contiguous view; other ranks are
/// made contiguous and read as (1, 1, rows, row_bytes)) into slots head.. of `out`
/// (B, H, t_out, dim) f32, adding `center` (B, H, 1, dim) f32 if given.
#[allow(clippy::too_many_arguments)]
fn dequantize_into(
    dev: &Arc<CudaDevice>,
    spec: KvQuant,
    dim: usize,
    x: &Arg,
    center: Option<&Arg>,
    out: u64,
    t_out: usize,
    head: usize,
) -> Result<()> {
    check(spec, dim)?;
    let rb = spec.row_bytes(dim);
    let nd = x.shape.len();
    if x.dtype != DType::U8 || nd == 0 || x.shape[nd - 1] != rb {
        return Err(Error::shape(format!(
            "dequantize_kv: expected u8 rows of {rb} bytes, found {} {:?}",
            x.dtype, x.shape
        )));
    }
    let rows = x.numel() / rb.max(1);
    if rows == 0 {
        return Ok(());
    }
    // (B, H, T) and byte strides of the rows: 4-D views are read in place when their rows
    // are contiguous (a cache sliced over T), else copied; other ranks are copied and read as
    // (1, 1, rows).
    let in_place = nd == 4 && (x.data.strides[3] == 1 || rb == 1);
    let xa = Arg {
        data: if in_place {
            x.data.clone()
        } else {
            elementwise::contiguous(dev, x)?
        },
        shape: x.shape.clone(),
        dtype: DType::U8,
    };
    let (hh, t, s) = if nd == 4 {
        let st = |i: usize| {
            if xa.shape[i] == 1 {
                0
            } else {
                xa.data.strides[i] as i64
            }
        };
        (x.shape[1], x.shape[2], [st(0), st(1), st(2)])
    } else {
        (1, rows, [0, 0, rb as i64])
    };
    let cptr = match center {
        Some(c) => {
            if c.dtype != DType::F32 || c.numel() * t != rows * dim {
                return Err(Error::shape(format!(
                    "dequantize_kv: expected an f32 center (B, H, 1, {dim}), found {} {:?}",
                    c.dtype, c.shape
                )));
            }
            Some(Arg {
                data: elementwise::contiguous(dev, c)?,
                shape: c.shape.clone(),
                dtype: DType::F32,
            })
        }
        None => None,
    };
    let (n, norm) = rotation(dim);
    let f = quant_fn(dev, DType::F32, "kv_dequantize")?;
    let mut launch = Launch::new(f, "kv_dequantize");
    launch
        .arg(ptr_at(&xa, dev)?)
        .arg(match &cptr {
            Some(c) => ptr_at(c, dev)?,
            None => 0u64,
        })
        .arg(out)
        .arg(int(hh, "heads")?)
        .arg(int(t, "rows")?)
        .arg(s[0])
        .arg(s[1])
        .arg(s[2])
        .arg(int(t_out, "rows")?)
        .arg(int(head, "head")?)
        .arg(int(dim, "dim")?)
        .arg(int(spec.group, "group")?)
        .arg(spec.bits as i32)
        .arg(spec.rotate as i32)
        .arg(n)
        .arg(norm);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); one block per
    // packed row of `xa` (rows rows of row_bytes, strides `s` describe the view), writing slot
    // head + t of (heads, t_out, dim) `out`, which the caller allocated with t_out ≥ head + t;
    // the center (if any) holds rows / t · dim f32 (checked above).
    unsafe {
        launch.run(
            dev,
            (int(rows, "rows")? as u32, 1, 1),
            (THREADS, 1, 1),
            (dim * 4) as u32,
        )?
    };
    drop((xa, cptr));
    Ok(())
}

pub(crate) fn dequantize(
    dev: &Arc<CudaDevice>,
    spec: KvQuant,
    dim: usize,
    x: &Arg,
    center: Option<&Arg>,
    shape: &[usize],
) -> Result<Data> {
    let (data, out) = output(dev, shape, DType::F32)?;
    if crate::shape::numel(shape) == 0 {
        return Ok(data);
    }
    if center.is_some() && x.shape.len() != 4 {
        return Err(Error::shape(
            "dequantize_kv: a center needs (B, H, T, row_bytes) rows",
        ));
    }
    let t_out = if x.shape.len() == 4 {
        x.shape[2]
    } else {
        x.numel() / spec.row_bytes(dim).max(1)
    };
    dequantize_into(dev, spec, dim, x, center, out, t_out, 0)?;
    Ok(data)
}

/// Widens the exact head rows (B, H, head, d) into slots 0..head of `out` (B, H, t_out, d).
fn head_into(dev: &Arc<CudaDevice>, x: &Arg, out: u64, t_out: usize) -> Result<()> {
    if !x.dtype.is_float() {
        return Err(Error::dtype(format!(
            "quantized_sdpa: expected a float exact head, found {}",
            x.dtype
        )));
    }
    let (head, d) = (x.shape[2], x.shape[3]);
    let total = x.numel();
    if total == 0 {
        return Ok(());
    }
    let xc = Arg {
        data: elementwise::contiguous(dev, x)?,
        shape: x.shape.clone(),
        dtype: x.dtype,
    };
    let key = format!("kv_head/{}", x.dtype);
    let f = dev.function(&key, || build("RMLX_KV_HEAD", x.dtype), "kv_head_copy")?;
    let mut launch = Launch::new(f, "kv_head_copy");
    launch
        .arg(ptr_at(&xc, dev)?)
        .arg(out)
        .arg(int(head, "head")?)
        .arg(int(t_out, "rows")?)
        .arg(int(d, "dim")?)
        .arg(total as i64);
    // SAFETY: the arguments follow the kernel's parameter list (kernels/*.cu); `xc` is a
    // contiguous (B, H, head, d) copy of `total` elements; each lands in slots 0..head of (B,
    // H, t_out, d) `out`, t_out ≥ head (the caller's layout).
    unsafe { launch.run_1d(dev, total)? };
    drop(xc);
    Ok(())
}

/// Attention over packed K/V: both dequantized into f32 (B, Hkv, head + T, ·) on the GPU,
/// then the SDPA kernel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn quantized_sdpa(
    dev: &Arc<CudaDevice>,
    scale: f32,
    window: Option<usize>,
    has_sinks: bool,
    k_centered: bool,
    head: usize,
    ks: KvQuant,
    vs: KvQuant,
    inputs: Vec<Arg>,
    shape: &[usize],
    out_dtype: DType,
) -> Result<Data> {
    let (q, k, v) = (&inputs[0], &inputs[1], &inputs[2]);
    let (b, d) = (q.shape[0], q.shape[3]);
    let (hkv, tp) = (k.shape[1], k.shape[2]);
    let dv = shape[3];
    let tk = tp + head;
    let extra = 5 + has_sinks as usize;
    let center = k_centered.then(|| &inputs[extra]);
    let heads = inputs.get(extra + k_centered as usize..extra + k_centered as usize + 2);
    let mk = |dim: usize| -> Result<(Data, u64)> { output(dev, &[b, hkv, tk, dim], DType::F32) };
    let (kd, kptr) = mk(d)?;
    let (vd, vptr) = mk(dv)?;
    if head > 0 {
        let hs = heads
            .ok_or_else(|| Error::msg("quantized_sdpa: expected the exact head rows as inputs"))?;
        head_into(dev, &hs[0], kptr, tk)?;
        head_into(dev, &hs[1], vptr, tk)?;
    }
    if k.shape[0] * hkv * tp > 0 {
        dequantize_into(dev, ks, d, k, center, kptr, tk, head)?;
        dequantize_into(dev, vs, dv, v, None, vptr, tk, head)?;
    }
    let mut args = inputs;
    let rest = args.split_off(3);
    let q = args.swap_remove(0);
    let mut sdpa_inputs = vec![
        q,
        Arg {
            data: kd,
            shape: vec![b, hkv, tk, d],
            dtype: DType::F32,
        },
        Arg {
            data: vd,
            shape: vec![b, hkv, tk, dv],
            dtype: DType::F32,
        },
    ];
    sdpa_inputs.extend(rest.into_iter().take(2 + has_sinks as usize));
    super::attention::sdpa(
        dev,
        scale,
        window,
        has_sinks,
        &sdpa_inputs,
        shape,
        out_dtype,
    )
}

/// One source per kernel module this family can build, for the NVRTC compile test.
pub(crate) fn sources() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in [DType::F32, DType::F16, DType::BF16] {
        out.push((format!("kvq/{t}"), build("RMLX_KVQ", t)));
        out.push((format!("kv_head/{t}"), build("RMLX_KV_HEAD", t)));
    }
    out
}

//! The CPU backend: every primitive, multi-threaded with rayon, SIMD where time goes.
//! One file per primitive family, as in MLX's backend folders.

mod attention;
mod attention_decode;
mod attention_quantized;
mod binary;
mod compiled;
mod indexing;
mod kv_attend;
mod matmul;
mod norm;
pub mod quantized;
mod reduce;
mod rope;
mod simd;
#[cfg(target_arch = "x86_64")]
mod simd_avx2;
pub mod spin;
pub use super::common::strided;
mod unary;
mod views;

use super::common::views as common_views;
use super::{Arg, Backend};
use crate::array::Data;
use crate::buffer::{Buffer, HostBuffer};
use crate::device::Device;
use crate::dtype::DType;
use crate::error::Result;
use crate::primitive::Primitive;
use crate::shape::numel;

pub struct CpuBackend;

pub static CPU: CpuBackend = CpuBackend;

/// Sets the number of CPU threads (rayon's global pool). Call once, before any work.
pub fn set_num_threads(n: usize) -> Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n.max(1))
        .build_global()
        .map_err(|e| crate::Error::msg(format!("cpu: cannot set {n} threads: {e}")))
}

pub fn num_threads() -> usize {
    rayon::current_num_threads()
}

/// A zeroed contiguous output buffer.
pub(crate) fn alloc(shape: &[usize], dtype: DType) -> Result<HostBuffer> {
    HostBuffer::zeroed(numel(shape).saturating_mul(dtype.size()))
}

pub(crate) fn finish(buf: HostBuffer, shape: &[usize]) -> Data {
    Data::contiguous(Buffer::Host(buf), shape)
}

/// A float input's values as f32, in row-major order; 16-bit floats are widened by the
/// slice converters (8 lanes at a time where the CPU has F16C).
pub(crate) fn f32_values(arg: &Arg, op: &str) -> Result<Vec<f32>> {
    use half::slice::HalfFloatSliceExt;
    let data = contiguous(arg)?;
    let n = arg.numel();
    let mut out = vec![0f32; n];
    match arg.dtype {
        DType::F16 => data
            .host_slice::<half::f16>(n)?
            .convert_to_f32_slice(&mut out),
        DType::BF16 => data
            .host_slice::<half::bf16>(n)?
            .convert_to_f32_slice(&mut out),
        DType::F32 => out.copy_from_slice(data.host_slice::<f32>(n)?),
        other => {
            return Err(crate::Error::dtype(format!(
                "{op}: expected a float dtype, found {other}"
            )))
        }
    }
    Ok(out)
}

/// The input as a contiguous host view (copied only if its strides require it).
pub(crate) fn contiguous(arg: &Arg) -> Result<Data> {
    if arg.is_contiguous() {
        return Ok(arg.data.clone());
    }
    views::copy_contiguous(arg)
}

impl Backend for CpuBackend {
    fn device(&self) -> Device {
        Device::Cpu
    }

    fn eval_primitive(
        &self,
        prim: &Primitive,
        inputs: Vec<Arg>,
        out_shape: &[usize],
        out_dtype: DType,
    ) -> Result<Data> {
        let s = out_shape;
        let d = out_dtype;
        match prim {
            Primitive::AsType(_) => unary::astype(&inputs[0], s, d),
            Primitive::Unary(op) => unary::unary(*op, &inputs[0], s, d),
            Primitive::Binary(op) => binary::binary(*op, &inputs[0], &inputs[1], s, d),
            Primitive::Where => binary::select(&inputs[0], &inputs[1], &inputs[2], s, d),
            Primitive::Reduce { op, axes } => reduce::reduce(*op, axes, &inputs[0], s, d),
            Primitive::ArgReduce { op, axis } => reduce::arg_reduce(*op, *axis, &inputs[0], s),
            Primitive::Softmax => reduce::softmax(&inputs[0], s, d),
            Primitive::Swiglu => unary::swiglu(&inputs[0], s, d),
            Primitive::LogSumExp => reduce::logsumexp(&inputs[0], s, d),
            Primitive::TopK { k } => reduce::topk(*k, &inputs[0], s),
            Primitive::Reshape(_) => views::reshape(&inputs[0], s),
            Primitive::Transpose(perm) => Ok(common_views::transpose(&inputs[0], perm)),
            Primitive::Slice { start, step, .. } => {
                Ok(common_views::slice(&inputs[0], start, step))
            }
            Primitive::BroadcastTo(_) => Ok(common_views::broadcast_to(&inputs[0], s)),
            Primitive::Contiguous => contiguous(&inputs[0]),
            Primitive::ToDevice(_) => Ok(inputs[0].data.clone()),
            Primitive::Concat { axis } => indexing::concat(*axis, &inputs, s, d),
            Primitive::SliceUpdate { start } => indexing::slice_update(start, inputs, s, d),
            Primitive::Take { axis } => indexing::take(*axis, &inputs[0], &inputs[1], s, d),
            Primitive::TakeAlongAxis { axis } => {
                indexing::take_along_axis(*axis, &inputs[0], &inputs[1], s, d)
            }
            Primitive::Matmul => matmul::matmul(&inputs[0], &inputs[1], s, d),
            Primitive::QuantizedMatmul { format, n, k } => {
                quantized::quantized_matmul(*format, *n, *k, &inputs, s, d)
            }
            Primitive::GatherQmm { format, n, k } => {
                quantized::gather_qmm(*format, *n, *k, &inputs, s, d)
            }
            Primitive::QuantizedTake { format, k } => {
                quantized::quantized_take(*format, *k, &inputs, s, d)
            }
            Primitive::RmsNorm { eps } => norm::rms_norm(*eps, &inputs[0], &inputs[1], s, d),
            Primitive::Rope {
                layout,
                dims,
                mscale,
            } => rope::rope(*layout, *dims, *mscale, &inputs, s, d),
            Primitive::ScaledDotProductAttention {
                scale,
                window,
                has_sinks,
            } => attention::sdpa(*scale, *window, *has_sinks, &inputs, s, d),
            Primitive::QuantizeKv(q) => attention_quantized::quantize_kv(*q, &inputs[0], s),
            Primitive::DequantizeKv {
                spec,
                dim,
                centered,
            } => attention_quantized::dequantize_kv(
                *spec,
                *dim,
                &inputs[0],
                centered.then(|| &inputs[1]),
                s,
            ),
            Primitive::QuantizedSdpa {
                scale,
                window,
                has_sinks,
                k_centered,
                head,
                k,
                v,
            } => attention_quantized::quantized_sdpa(
                *scale,
                *window,
                *has_sinks,
                *k_centered,
                *head,
                *k,
                *v,
                &inputs,
                s,
                d,
            ),
            Primitive::Compiled(k) => compiled::compiled(k, &inputs, s, d),
            Primitive::Custom(op) => op.eval_cpu(&inputs, s, d),
        }
    }

    fn download(&self, arg: &Arg) -> Result<Data> {
        Ok(arg.data.clone())
    }

    fn upload(&self, arg: &Arg) -> Result<Data> {
        Ok(arg.data.clone())
    }

    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
}

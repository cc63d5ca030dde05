//! `Array`: a cheap handle to a node of the compute graph. A node holds its shape, dtype and
//! device, and either data (a strided view of a buffer) or the primitive and inputs that will
//! compute it. Ops build nodes; `eval` turns pending nodes into data and detaches them.

use crate::buffer::{Buffer, HostBuffer, SharedBytes};
use crate::device::{default_device, Device, Stream};
use crate::dtype::{DType, Element};
use crate::error::{Error, Result};
use crate::primitive::Primitive;
use crate::shape::{contiguous_strides, numel, Shape};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Clone)]
pub struct Array(pub(crate) Arc<Node>);

pub(crate) struct Node {
    pub(crate) shape: Shape,
    pub(crate) dtype: DType,
    /// Where the node is computed (pending) or belongs (ready: its data may still sit on another
    /// device until first used here).
    pub(crate) stream: Stream,
    pub(crate) state: Mutex<State>,
    /// A copy of the ready data on another device, made by the first consumer there and kept
    /// for the next ones: a weight crosses to the GPU once.
    pub(crate) moved: Mutex<Option<Data>>,
}

pub(crate) enum State {
    Pending {
        prim: Primitive,
        inputs: Vec<Array>,
    },
    Ready(Data),
    /// Transient while `eval` runs the node's kernel (another thread's eval that needs the
    /// node waits: `eval::wait_until_run`).
    Running,
    /// The eval that ran the node failed: reading it is this error again (never a hang).
    Failed(Arc<str>),
    /// An input of a function being traced by `compile`: it stands for the arrays the
    /// compiled function will be called with, so it has no data and cannot be evaluated.
    Placeholder,
}

/// Evaluated contents: a strided view (element offset and strides) into a shared buffer.
#[derive(Clone)]
pub struct Data {
    pub buffer: Arc<Buffer>,
    pub offset: usize,
    pub strides: Vec<usize>,
}

impl Data {
    /// A fresh contiguous buffer for `shape`.
    pub fn contiguous(buffer: Buffer, shape: &[usize]) -> Self {
        Data {
            buffer: Arc::new(buffer),
            offset: 0,
            strides: contiguous_strides(shape),
        }
    }

    /// True if the view is row-major contiguous (size-1 dims may have any stride).
    pub fn is_contiguous(&self, shape: &[usize]) -> bool {
        let mut expected = 1usize;
        for (d, s) in shape.iter().zip(&self.strides).rev() {
            if *d != 1 && *s != expected {
                return false;
            }
            expected *= d;
        }
        true
    }

    pub fn host(&self) -> Result<&HostBuffer> {
        self.buffer.host()
    }

    /// The elements of a contiguous view, starting at its offset.
    pub fn host_slice<T: Element>(&self, numel: usize) -> Result<&[T]> {
        let all = self.host()?.as_slice::<T>()?;
        all.get(self.offset..self.offset + numel)
            .ok_or_else(|| Error::msg("data: view extends past its buffer"))
    }
}

impl Array {
    pub(crate) fn from_node(shape: Shape, dtype: DType, device: Device, state: State) -> Array {
        Array(Arc::new(Node {
            shape,
            dtype,
            stream: Stream::default_for(device),
            state: Mutex::new(state),
            moved: Mutex::new(None),
        }))
    }

    /// Records a new graph node. Ops validate before calling this. It runs on the first input
    /// that lives on a GPU, else on the default device (see `device`).
    pub(crate) fn new_op(prim: Primitive, inputs: Vec<Array>, shape: Shape, dtype: DType) -> Array {
        let device = inputs
            .iter()
            .map(|a| a.device())
            .find(|d| d.is_gpu())
            .unwrap_or_else(default_device);
        Array::from_node(shape, dtype, device, State::Pending { prim, inputs })
    }

    /// A traced input of `compile` (see `State::Placeholder`).
    pub(crate) fn placeholder(shape: Shape, dtype: DType, device: Device) -> Array {
        Array::from_node(shape, dtype, device, State::Placeholder)
    }

    /// An evaluated array over existing data: a device buffer belongs to its device, host data
    /// to the default device (uploaded on first use there).
    pub fn from_data(data: Data, shape: Shape, dtype: DType) -> Array {
        let device = match data.buffer.device() {
            Device::Cpu => default_device(),
            gpu => gpu,
        };
        Array::from_node(shape, dtype, device, State::Ready(data))
    }

    pub fn from_slice<T: Element>(values: &[T], shape: &[usize]) -> Result<Array> {
        if numel(shape) != values.len() {
            return Err(Error::shape(format!(
                "array: shape {shape:?} holds {} elements, found {} values",
                numel(shape),
                values.len()
            )));
        }
        let buf = Buffer::Host(HostBuffer::from_slice(values)?);
        Ok(Array::from_data(
            Data::contiguous(buf, shape),
            shape.to_vec(),
            T::DTYPE,
        ))
    }

    pub fn from_vec<T: Element>(values: Vec<T>, shape: &[usize]) -> Result<Array> {
        Array::from_slice(&values, shape)
    }

    pub fn scalar<T: Element>(v: T) -> Array {
        Array::from_slice(&[v], &[]).expect("a scalar always fits")
    }

    /// A zero-copy view of `len` bytes at `offset` in shared memory (an mmap'd file).
    /// The caller has checked that `len` matches `shape` and `dtype`.
    pub fn from_shared_bytes(
        source: SharedBytes,
        offset: usize,
        shape: &[usize],
        dtype: DType,
    ) -> Result<Array> {
        let len = crate::shape::checked_numel(shape)
            .and_then(|n| n.checked_mul(dtype.size()))
            .ok_or_else(|| Error::shape(format!("array: shape {shape:?} overflows")))?;
        let host = HostBuffer::mapped(source, offset, len)?;
        if !(host.bytes().as_ptr() as usize).is_multiple_of(dtype.size()) {
            // A misaligned mapped tensor is copied once into an aligned buffer.
            let mut owned = HostBuffer::zeroed(len)?;
            owned
                .bytes_mut()
                .expect("owned")
                .copy_from_slice(host.bytes());
            return Ok(Array::from_data(
                Data::contiguous(Buffer::Host(owned), shape),
                shape.to_vec(),
                dtype,
            ));
        }
        Ok(Array::from_data(
            Data::contiguous(Buffer::Host(host), shape),
            shape.to_vec(),
            dtype,
        ))
    }

    pub fn zeros(shape: &[usize], dtype: DType) -> Result<Array> {
        let bytes = numel(shape).saturating_mul(dtype.size());
        let buf = Buffer::Host(HostBuffer::zeroed(bytes)?);
        Ok(Array::from_data(
            Data::contiguous(buf, shape),
            shape.to_vec(),
            dtype,
        ))
    }

    pub fn full(shape: &[usize], value: f32, dtype: DType) -> Result<Array> {
        let mut buf = HostBuffer::zeroed(numel(shape).saturating_mul(dtype.size()))?;
        crate::dispatch_dtype!(dtype, T => {
            buf.as_mut_slice::<T>()?.fill(T::from_f32(value));
        });
        Ok(Array::from_data(
            Data::contiguous(Buffer::Host(buf), shape),
            shape.to_vec(),
            dtype,
        ))
    }

    /// 0, 1, …, n-1.
    pub fn arange(n: usize, dtype: DType) -> Result<Array> {
        let mut buf = HostBuffer::zeroed(n.saturating_mul(dtype.size()))?;
        crate::dispatch_dtype!(dtype, T => {
            for (i, o) in buf.as_mut_slice::<T>()?.iter_mut().enumerate() {
                *o = T::from_f32(i as f32);
            }
        });
        Ok(Array::from_data(
            Data::contiguous(Buffer::Host(buf), &[n]),
            vec![n],
            dtype,
        ))
    }

    pub fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    /// The size of `axis` (negative counts from the end); an error names the axis and the
    /// rank when it is out of range.
    pub fn dim(&self, axis: isize) -> Result<usize> {
        let a = crate::shape::normalize_axis(axis, self.ndim(), "dim")?;
        Ok(self.0.shape[a])
    }

    pub fn ndim(&self) -> usize {
        self.0.shape.len()
    }

    pub fn size(&self) -> usize {
        numel(&self.0.shape)
    }

    pub fn nbytes(&self) -> usize {
        self.size() * self.dtype().size()
    }

    pub fn dtype(&self) -> DType {
        self.0.dtype
    }

    pub fn device(&self) -> Device {
        self.0.stream.device
    }

    /// The stream the node runs on.
    pub fn stream(&self) -> Stream {
        self.0.stream
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a kernel panicked mid-write; the state is still consistent
        // (Running), so recover the guard rather than propagate the panic.
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_evaluated(&self) -> bool {
        matches!(&*self.lock(), State::Ready(_))
    }

    /// Same node (identity, not value).
    pub fn same_node(&self, other: &Array) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.0) as usize
    }

    /// The evaluated data; evaluates first if needed.
    pub fn data(&self) -> Result<Data> {
        self.eval()?;
        match &*crate::eval::wait_until_run(self) {
            State::Ready(d) => Ok(d.clone()),
            State::Placeholder => Err(Error::msg(
                "compile: a traced function read the data of an array that depends on its \
                 inputs; a compiled function may only build the graph (no item/to_vec/eval)",
            )),
            State::Failed(e) => Err(crate::eval::failed(e)),
            _ => Err(Error::msg("array: node was not evaluated")),
        }
    }

    /// Moves the data to the array's device now (see `eval::place`).
    pub fn place(&self) -> Result<()> {
        crate::eval::place(self)
    }

    /// Whether the evaluated data lives on `device` (its own data or a cached copy).
    pub fn is_resident_on(&self, device: Device) -> bool {
        let here = matches!(&*self.lock(), State::Ready(d) if d.buffer.device() == device);
        here || self
            .0
            .moved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(|d| d.buffer.device() == device)
    }

    pub fn eval(&self) -> Result<()> {
        crate::eval::eval(&[self])
    }

    /// Evaluates, then copies the elements out in row-major order, converted to `T`.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        let a = if self.dtype() == T::DTYPE {
            self.clone()
        } else {
            self.astype(T::DTYPE)?
        };
        let a = if a.device().is_cpu() {
            a
        } else {
            a.to_device(Device::Cpu)?
        };
        let data = a.data()?;
        let host = data.host()?;
        let all = host.as_slice::<T>()?;
        let shape = a.shape();
        if data.is_contiguous(shape) {
            return Ok(all[data.offset..data.offset + a.size()].to_vec());
        }
        let mut out = Vec::with_capacity(a.size());
        crate::backend::common::strided::for_each_offset(shape, &data.strides, data.offset, |o| {
            out.push(all[o])
        });
        Ok(out)
    }

    /// The single element of a size-1 array.
    pub fn item<T: Element>(&self) -> Result<T> {
        if self.size() != 1 {
            return Err(Error::shape(format!(
                "item: expected one element, found shape {:?}",
                self.shape()
            )));
        }
        Ok(self.to_vec::<T>()?[0])
    }
}

impl fmt::Debug for Array {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.lock() {
            State::Pending { prim, .. } => format!("pending {}", prim.name()),
            State::Ready(_) => "ready".to_string(),
            State::Running => "running".to_string(),
            State::Failed(_) => "failed".to_string(),
            State::Placeholder => "placeholder".to_string(),
        };
        write!(
            f,
            "Array({:?}, {}, {}, {state})",
            self.shape(),
            self.dtype(),
            self.device()
        )
    }
}

impl Drop for Node {
    /// Dropping a long chain of pending nodes recursively would overflow the stack: unlink the
    /// inputs into an explicit work list instead.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let mut stack = match std::mem::replace(state, State::Running) {
            State::Pending { inputs, .. } => inputs,
            _ => return,
        };
        while let Some(a) = stack.pop() {
            if let Ok(mut node) = Arc::try_unwrap(a.0) {
                let st = node.state.get_mut().unwrap_or_else(|p| p.into_inner());
                if let State::Pending { inputs, .. } = std::mem::replace(st, State::Running) {
                    stack.extend(inputs);
                }
            }
        }
    }
}

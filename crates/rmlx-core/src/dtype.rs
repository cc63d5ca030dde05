//! Element types, promotion, and the `Element` trait through which kernels are written once,
//! generic over the type, and dispatched by `dispatch_dtype!`.

use half::{bf16, f16};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    Bool,
    U8,
    U32,
    I32,
    F16,
    BF16,
    F32,
}

impl DType {
    pub const ALL: [DType; 7] = [
        DType::Bool,
        DType::U8,
        DType::U32,
        DType::I32,
        DType::F16,
        DType::BF16,
        DType::F32,
    ];

    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::U8 => 1,
            DType::F16 | DType::BF16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F16 | DType::BF16 | DType::F32)
    }

    pub fn is_integer(self) -> bool {
        matches!(self, DType::U8 | DType::U32 | DType::I32)
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::U8 => "u8",
            DType::U32 => "u32",
            DType::I32 => "i32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::F32 => "f32",
        }
    }

    /// Type promotion as MLX/NumPy do it for the types we have: floats win over integers,
    /// the wider float wins, f16 with bf16 gives f32.
    pub fn promote(a: DType, b: DType) -> DType {
        use DType::*;
        if a == b {
            return a;
        }
        match (a, b) {
            (F32, _) | (_, F32) => F32,
            (F16, BF16) | (BF16, F16) => F32,
            (F16, _) | (_, F16) => F16,
            (BF16, _) | (_, BF16) => BF16,
            (I32, _) | (_, I32) => I32,
            (U32, _) | (_, U32) => {
                // u32 with a signed or smaller type: i32 is not wide enough in general, but is
                // what the LM code needs (indices); keep u32 when the other side is unsigned.
                if matches!(a, Bool | U8) || matches!(b, Bool | U8) {
                    U32
                } else {
                    I32
                }
            }
            (U8, _) | (_, U8) => U8,
            (Bool, Bool) => Bool,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Only the types below are elements: buffers are reinterpreted as slices of them
/// (`buffer::cast_slice`), which is sound only for padding-free plain old data, so the trait
/// is sealed rather than trusting outside impls.
mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
    impl Sealed for i32 {}
    impl Sealed for u32 {}
    impl Sealed for u8 {}
    impl Sealed for bool {}
}

/// A scalar type a kernel can work on. Arithmetic goes through f32 (exact for every type here
/// except large i32/u32, which have their own integer paths where it matters). Sealed: the
/// implementations are exactly the `DType`s, plain old data (bool: bytes 0 and 1 only, which
/// `buffer::cast_slice` checks).
pub trait Element: sealed::Sealed + Copy + Send + Sync + Default + PartialOrd + 'static {
    const DTYPE: DType;
    fn to_f32(self) -> f32;
    fn from_f32(v: f32) -> Self;
    fn to_f64(self) -> f64 {
        self.to_f32() as f64
    }
    fn from_f64(v: f64) -> Self {
        Self::from_f32(v as f32)
    }
}

macro_rules! impl_element {
    ($t:ty, $d:expr, $to:expr, $from:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            #[inline(always)]
            fn to_f32(self) -> f32 {
                ($to)(self)
            }
            #[inline(always)]
            fn from_f32(v: f32) -> Self {
                ($from)(v)
            }
        }
    };
}

impl_element!(f32, DType::F32, |x: f32| x, |v: f32| v);
impl_element!(f16, DType::F16, |x: f16| x.to_f32(), f16::from_f32);
impl_element!(bf16, DType::BF16, |x: bf16| x.to_f32(), bf16::from_f32);
macro_rules! impl_int_element {
    ($t:ty, $d:expr) => {
        impl Element for $t {
            const DTYPE: DType = $d;
            #[inline(always)]
            fn to_f32(self) -> f32 {
                self as f32
            }
            #[inline(always)]
            fn from_f32(v: f32) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
        }
    };
}

impl_int_element!(i32, DType::I32);
impl_int_element!(u32, DType::U32);
impl_element!(u8, DType::U8, |x: u8| x as f32, |v: f32| v as u8);
impl_element!(
    bool,
    DType::Bool,
    |x: bool| if x { 1.0 } else { 0.0 },
    |v: f32| v != 0.0
);

/// Runs `$body` with `$T` bound to the Rust type of `$dtype`:
/// `dispatch_dtype!(x.dtype(), T => kernel::<T>(..))`.
#[macro_export]
macro_rules! dispatch_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F16 => {
                type $T = ::half::f16;
                $body
            }
            $crate::DType::BF16 => {
                type $T = ::half::bf16;
                $body
            }
            $crate::DType::I32 => {
                type $T = i32;
                $body
            }
            $crate::DType::U32 => {
                type $T = u32;
                $body
            }
            $crate::DType::U8 => {
                type $T = u8;
                $body
            }
            $crate::DType::Bool => {
                type $T = bool;
                $body
            }
        }
    };
}

/// Like `dispatch_dtype!` for float types only; other types give a dtype error naming `$op`.
#[macro_export]
macro_rules! dispatch_float {
    ($dtype:expr, $op:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                type $T = f32;
                $body
            }
            $crate::DType::F16 => {
                type $T = ::half::f16;
                $body
            }
            $crate::DType::BF16 => {
                type $T = ::half::bf16;
                $body
            }
            other => {
                return Err($crate::Error::dtype(format!(
                    "{}: expected a float dtype, found {}",
                    $op, other
                )))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_is_symmetric_and_float_wins() {
        for a in DType::ALL {
            for b in DType::ALL {
                assert_eq!(DType::promote(a, b), DType::promote(b, a), "{a} {b}");
                if a.is_float() && !b.is_float() {
                    assert_eq!(DType::promote(a, b), a);
                }
            }
        }
        assert_eq!(DType::promote(DType::F16, DType::BF16), DType::F32);
        assert_eq!(DType::promote(DType::BF16, DType::F32), DType::F32);
    }
}

//! The element types a model may hold: `f32` on the wire and in production, `f64` where
//! researchers need reference-grade arithmetic (aggregators are tested against Flower in f64).

use std::fmt::Debug;
use std::iter::Sum;

use ndarray::{LinalgScalar, ScalarOperand};
use num_traits::Float;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// Tag of an element type, as written on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    /// IEEE 754 binary32.
    F32,
    /// IEEE 754 binary64.
    F64,
}

impl DType {
    /// The one-byte wire tag.
    #[must_use]
    pub const fn tag(self) -> u8 {
        match self {
            Self::F32 => 1,
            Self::F64 => 2,
        }
    }

    /// Parses a wire tag; `None` for an unknown tag.
    #[must_use]
    pub const fn from_tag(tag: u8) -> Option<Self> {
        match tag {
            1 => Some(Self::F32),
            2 => Some(Self::F64),
            _ => None,
        }
    }

    /// Bytes per element.
    #[must_use]
    pub const fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F64 => "f64",
        })
    }
}

/// A floating-point element type of model parameters: implemented for `f32` and `f64` only.
pub trait Scalar:
    Float
    + LinalgScalar
    + ScalarOperand
    + Default
    + Debug
    + Sum
    + Send
    + Sync
    + sealed::Sealed
    + 'static
{
    /// The wire tag of this type.
    const DTYPE: DType;

    /// Converts from `f64`, rounding to nearest.
    fn from_f64(x: f64) -> Self;

    /// Converts to `f64` exactly.
    fn as_f64(self) -> f64;

    /// Appends the little-endian bytes of `src` to `out`.
    fn extend_le_bytes(src: &[Self], out: &mut Vec<u8>);

    /// Overwrites `dst` with the elements encoded little-endian in `bytes`, pairing them up to the
    /// shorter of the two; callers check lengths first.
    fn read_le_into(bytes: &[u8], dst: &mut [Self]);

    /// Writes `src` little-endian into `out`, pairing them up to the shorter of the two.
    fn write_le_into(src: &[Self], out: &mut [u8]);

    /// An unsigned key whose integer order is IEEE 754's total order of the values (−NaN < −∞ <
    /// … < −0 < +0 < … < +∞ < +NaN), so selection and sorting run on plain integer compares.
    fn order_key(self) -> u64;

    /// Inverse of [`order_key`](Self::order_key).
    fn from_order_key(key: u64) -> Self;
}

macro_rules! impl_scalar {
    ($t:ty, $dtype:expr, $n:literal, $bits:ty) => {
        impl Scalar for $t {
            const DTYPE: DType = $dtype;

            #[inline]
            #[allow(
                clippy::cast_possible_truncation,
                reason = "rounding to the element type is the point"
            )]
            fn from_f64(x: f64) -> Self {
                x as $t
            }

            #[inline]
            #[allow(clippy::cast_lossless, reason = "identity for f64")]
            fn as_f64(self) -> f64 {
                self as f64
            }

            fn extend_le_bytes(src: &[Self], out: &mut Vec<u8>) {
                let start = out.len();
                out.resize(start + src.len() * $n, 0);
                Self::write_le_into(src, &mut out[start..]);
            }

            #[inline]
            fn order_key(self) -> u64 {
                const SIGN: $bits = 1 << (<$bits>::BITS - 1);
                let b = self.to_bits();
                u64::from(if b & SIGN != 0 { !b } else { b | SIGN })
            }

            #[inline]
            #[allow(clippy::cast_possible_truncation, reason = "keys of this type fit its width")]
            fn from_order_key(key: u64) -> Self {
                const SIGN: $bits = 1 << (<$bits>::BITS - 1);
                let k = key as $bits;
                <$t>::from_bits(if k & SIGN != 0 { k & !SIGN } else { !k })
            }

            fn read_le_into(bytes: &[u8], dst: &mut [Self]) {
                for (d, c) in dst.iter_mut().zip(bytes.chunks_exact($n)) {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    *d = <$t>::from_le_bytes(a);
                }
            }

            fn write_le_into(src: &[Self], out: &mut [u8]) {
                for (dst, x) in out.chunks_exact_mut($n).zip(src) {
                    dst.copy_from_slice(&x.to_le_bytes());
                }
            }
        }
    };
}

impl_scalar!(f32, DType::F32, 4, u32);
impl_scalar!(f64, DType::F64, 8, u64);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn order_keys_follow_total_order(a: f64, b: f64, c: f32, d: f32) {
            prop_assert_eq!(a.order_key().cmp(&b.order_key()), a.total_cmp(&b));
            prop_assert_eq!(c.order_key().cmp(&d.order_key()), c.total_cmp(&d));
            prop_assert_eq!(f64::from_order_key(a.order_key()).to_bits(), a.to_bits());
            prop_assert_eq!(f32::from_order_key(c.order_key()).to_bits(), c.to_bits());
        }
    }

    #[test]
    fn order_key_edges() {
        let v = [f32::NEG_INFINITY, -1.0, -0.0, 0.0, f32::MIN_POSITIVE, 1.0, f32::INFINITY];
        assert!(v.windows(2).all(|w| w[0].order_key() < w[1].order_key()));
    }
}

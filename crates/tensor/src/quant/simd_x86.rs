//! x86_64 SIMD kernels (AVX2 + FMA + F16C; AVX-512 VNNI for 8-bit dots),
//! chosen at run time.

use super::q8act::RowDotQ8;
use super::scalar::RowDot;
use super::QuantType;

/// The SIMD f32-activation kernel for `dtype`, if this CPU has one.
pub(crate) fn row_dot(_dtype: QuantType) -> Option<RowDot> {
    None
}

/// The SIMD 8-bit-activation kernel for `dtype`, if this CPU has one.
pub(crate) fn row_dot_q8(_dtype: QuantType) -> Option<RowDotQ8> {
    None
}

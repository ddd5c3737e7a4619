//! Quantized weight matrices (GGML block formats) and their CPU kernels for
//! LLM text generation: matrix-vector products for decoding one token, and
//! batched products for prefilling a prompt.
//!
//! A [`QuantMatrix`] holds a row-major matrix in one of the [`QuantType`]
//! formats, byte-for-byte as llama.cpp stores it in a GGUF file, so weights
//! are mapped or uploaded as they are and never converted at load time.
//!
//! # Precision
//!
//! The default kernels ([`QuantMatrix::matvec`], [`QuantMatrix::matmul`])
//! take f32 activations and compute `sum_i w_i * x_i` in f32 with every
//! `w_i` equal to what ggml's (and gguf-py's) dequantizer produces; only the
//! order of the additions differs from a dequantize-then-f32-matmul, which is
//! what transformers does with GGUF weights. Block scales are factored out of
//! each 32-value block's sum and Q4_1's min is applied as `m * sum(x)` over the
//! block, which changes the result only by f32 rounding. K-quant rows are
//! dequantized exactly per super-block and then dotted. `matmul` dequantizes
//! tiles bit-exactly and multiplies them in f32 with `gemm`.
//!
//! [`QuantMatrix::matvec_q8act`] is the faster llama.cpp-style path: the
//! activation is itself quantized to 8 bits per 32-block (f32 scale
//! `max|x|/127`) and blocks are multiplied with integer dot products
//! (AVX2 `maddubs`, or AVX-512 VNNI `dpbusd`). Its result differs from the
//! exact product by the activation's rounding: see [`Q8ACT_TOLERANCE`].
//!
//! # Kernels
//!
//! [`Kernel::Auto`] picks the best SIMD kernels the CPU has at run time
//! (AVX-512 F for the f32 path and AVX-512 VNNI for the 8-bit path where
//! present, else AVX2+FMA+F16C); [`Kernel::Avx2`] stops short of AVX-512;
//! [`Kernel::Scalar`] forces the portable code, which is what every other
//! CPU runs. Setting the environment variable
//! `IPFS_ACCELERATE_QUANT_KERNEL=scalar` (or `avx2`) makes `Auto` mean that
//! for the whole process (read once), so a whole model can be run on the
//! fallback path for comparison.

mod blocks;
mod matmul;
mod matvec;
mod q8act;
mod quantize;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod simd_x86;

pub use blocks::{q4k_parts, q6k_parts, KQuantParts};

use crate::{Error, Result};
use bytes::Bytes;

/// Worst relative error of [`QuantMatrix::matvec_q8act`] that the tests
/// allow: `|y_q8 - y| <= Q8ACT_TOLERANCE * sum_i |w_i x_i|` per output.
///
/// Rounding each activation to 8 bits moves it by at most half a step,
/// `max|x_block| / 254`; relative to the block's largest value that is
/// 1/254 ≈ 0.4 %, and it averages out over a row, so 1 % of the absolute
/// sum holds for activations spread over their blocks, as hidden states
/// are. It is a tolerance, not a worst-case bound: a block holding one
/// huge value beside small ones loses the small ones entirely.
pub const Q8ACT_TOLERANCE: f32 = 0.01;

/// Storage format of a [`QuantMatrix`]: GGML's, byte for byte (little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantType {
    /// IEEE f32, one value per 4 bytes.
    F32,
    /// IEEE f16, one value per 2 bytes.
    F16,
    /// 32 values per 34-byte block: f16 `d`, 32 × i8 `q`; value = d·q.
    Q8_0,
    /// 32 values per 18-byte block: f16 `d`, 16 bytes of nibbles (low nibbles
    /// are values 0..16, high nibbles 16..32); value = d·(q − 8).
    Q4_0,
    /// 32 values per 20-byte block: f16 `d`, f16 `m`, 16 bytes of nibbles
    /// (order as Q4_0); value = d·q + m.
    Q4_1,
    /// 256 values per 144-byte super-block: f16 `d`, f16 `dmin`, 12 bytes of
    /// packed 6-bit scales and mins for 8 sub-blocks of 32, 128 bytes of
    /// nibbles; value = (d·scale)·q − dmin·min.
    Q4K,
    /// 256 values per 210-byte super-block: 128 bytes of low nibbles, 64
    /// bytes of high 2-bit pairs, 16 i8 scales (one per 16 values), f16 `d`;
    /// value = (d·scale)·(q − 32).
    Q6K,
}

impl QuantType {
    /// Values per block (1 for F32 and F16).
    pub fn block_size(self) -> usize {
        match self {
            QuantType::F32 | QuantType::F16 => 1,
            QuantType::Q8_0 | QuantType::Q4_0 | QuantType::Q4_1 => blocks::QK,
            QuantType::Q4K | QuantType::Q6K => blocks::QK_K,
        }
    }

    /// Bytes per block.
    pub fn block_bytes(self) -> usize {
        match self {
            QuantType::F32 => 4,
            QuantType::F16 => 2,
            QuantType::Q8_0 => 34,
            QuantType::Q4_0 => 18,
            QuantType::Q4_1 => 20,
            QuantType::Q4K => 144,
            QuantType::Q6K => 210,
        }
    }

    /// GGML's name for the type (`"q4_1"`, `"f16"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            QuantType::F32 => "f32",
            QuantType::F16 => "f16",
            QuantType::Q8_0 => "q8_0",
            QuantType::Q4_0 => "q4_0",
            QuantType::Q4_1 => "q4_1",
            QuantType::Q4K => "q4_K",
            QuantType::Q6K => "q6_K",
        }
    }
}

impl std::fmt::Display for QuantType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which kernels a product runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernel {
    /// The fastest kernels this CPU supports (detected once at run time),
    /// unless `IPFS_ACCELERATE_QUANT_KERNEL` says otherwise (`scalar` or `avx2`).
    #[default]
    Auto,
    /// AVX2 + FMA + F16C kernels without AVX-512 (the 8-bit path on
    /// `maddubs` instead of VNNI); scalar on CPUs without them.
    Avx2,
    /// The portable scalar kernels, whatever the CPU.
    Scalar,
}

impl Kernel {
    /// The kernel this choice means, the environment override applied.
    fn resolve(self) -> Kernel {
        use std::sync::OnceLock;
        static FORCED: OnceLock<Option<Kernel>> = OnceLock::new();
        if self != Kernel::Auto {
            return self;
        }
        FORCED
            .get_or_init(|| match std::env::var("IPFS_ACCELERATE_QUANT_KERNEL").ok()?.to_ascii_lowercase().as_str() {
                "scalar" => Some(Kernel::Scalar),
                "avx2" => Some(Kernel::Avx2),
                _ => None,
            })
            .unwrap_or(Kernel::Auto)
    }

    /// Whether this choice may run SIMD kernels.
    pub(crate) fn use_simd(self) -> bool {
        self.resolve() != Kernel::Scalar
    }

    /// Whether this choice may run AVX-512 kernels.
    pub(crate) fn allow_avx512(self) -> bool {
        self.resolve() == Kernel::Auto
    }
}

/// A row-major matrix of `rows × cols` weights stored in a [`QuantType`].
///
/// Row `r` is the `cols / block_size` consecutive blocks starting at byte
/// `r * row_bytes`. The bytes are shared ([`Bytes`]), so a matrix cut from a
/// memory-mapped GGUF file costs no copy.
#[derive(Debug, Clone)]
pub struct QuantMatrix {
    dtype: QuantType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    data: Bytes,
}

impl QuantMatrix {
    /// Wraps `data` as a `rows × cols` matrix of `dtype`.
    ///
    /// Fails if `cols` is not a whole number of blocks or `data` is not
    /// exactly `rows · cols / block_size · block_bytes` bytes long.
    pub fn new(dtype: QuantType, rows: usize, cols: usize, data: Bytes) -> Result<Self> {
        const OP: &str = "QuantMatrix::new";
        let (bs, bb) = (dtype.block_size(), dtype.block_bytes());
        if !cols.is_multiple_of(bs) {
            return Err(Error::invalid(
                OP,
                format!("{dtype} stores {bs} values per block, but a row has {cols} columns (not a multiple of {bs})"),
            ));
        }
        let row_bytes = cols / bs * bb;
        let expected = row_bytes
            .checked_mul(rows)
            .ok_or_else(|| Error::invalid(OP, format!("a {rows} × {cols} {dtype} matrix does not fit in memory")))?;
        if data.len() != expected {
            return Err(Error::invalid(
                OP,
                format!(
                    "a {rows} × {cols} {dtype} matrix needs {expected} bytes ({row_bytes} per row), but {} were given",
                    data.len()
                ),
            ));
        }
        Ok(QuantMatrix { dtype, rows, cols, row_bytes, data })
    }

    /// Quantizes `values` (`rows × cols`, row-major) to `dtype` with ggml's
    /// reference round-to-nearest quantizers.
    ///
    /// Supports F32, F16, Q8_0, Q4_0 and Q4_1; the K-quants need llama.cpp's
    /// scale search, so for them load quantized bytes with [`QuantMatrix::new`].
    pub fn quantize(dtype: QuantType, rows: usize, cols: usize, values: &[f32]) -> Result<Self> {
        const OP: &str = "QuantMatrix::quantize";
        if Some(values.len()) != rows.checked_mul(cols) {
            return Err(Error::invalid(
                OP,
                format!("a {rows} × {cols} matrix has {} values, but {} were given", rows * cols, values.len()),
            ));
        }
        if !cols.is_multiple_of(dtype.block_size()) {
            return Err(Error::invalid(
                OP,
                format!("{dtype} needs the column count to be a multiple of {}, got {cols}", dtype.block_size()),
            ));
        }
        let bytes = quantize::quantize(dtype, values).ok_or_else(|| {
            Error::invalid(
                OP,
                format!("quantizing to {dtype} is not implemented; load already quantized bytes with QuantMatrix::new"),
            )
        })?;
        QuantMatrix::new(dtype, rows, cols, Bytes::from(bytes))
    }

    /// Storage format.
    pub fn dtype(&self) -> QuantType {
        self.dtype
    }

    /// Number of rows (outputs of a product).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns (inputs of a product).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.row_bytes
    }

    /// The raw GGML bytes, e.g. for uploading to a GPU.
    pub fn bytes(&self) -> &Bytes {
        &self.data
    }

    /// The bytes of row `r`.
    fn row(&self, r: usize) -> &[u8] {
        &self.data[r * self.row_bytes..(r + 1) * self.row_bytes]
    }

    /// Dequantizes row `row` into `out` (`cols` values), exactly as ggml does;
    /// this is an embedding lookup when the matrix is a token embedding.
    ///
    /// # Panics
    /// If `row >= rows` or `out.len() != cols`.
    pub fn row_f32(&self, row: usize, out: &mut [f32]) {
        self.row_f32_with(row, out, Kernel::Auto)
    }

    /// [`QuantMatrix::row_f32`] on the chosen kernels; every kernel gives
    /// the same bits.
    pub fn row_f32_with(&self, row: usize, out: &mut [f32], kernel: Kernel) {
        assert!(row < self.rows, "row {row} out of range: the matrix has {} rows", self.rows);
        assert_eq!(out.len(), self.cols, "row_f32: output must hold {} values", self.cols);
        blocks::dequant_row_with(self.dtype, self.row(row), out, kernel);
    }

    /// The whole matrix as f32, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.rows * self.cols];
        if self.cols > 0 {
            for (r, o) in out.chunks_exact_mut(self.cols).enumerate() {
                blocks::dequant_row_with(self.dtype, self.row(r), o, Kernel::Auto);
            }
        }
        out
    }

    /// `y = W x`: `x` has `cols` values, `y` gets `rows`; parallel over row chunks.
    ///
    /// # Panics
    /// If `x.len() != cols` or `y.len() != rows`.
    pub fn matvec(&self, x: &[f32], y: &mut [f32]) {
        self.matvec_with(x, y, Kernel::Auto)
    }

    /// [`QuantMatrix::matvec`] on the chosen kernels.
    pub fn matvec_with(&self, x: &[f32], y: &mut [f32], kernel: Kernel) {
        self.check_vec(x, y);
        matvec::matvec(self, x, y, kernel);
    }

    /// `y = W x` with the activation quantized to 8 bits per 32-block and
    /// integer block products (llama.cpp's method): faster, and within
    /// [`Q8ACT_TOLERANCE`] of [`QuantMatrix::matvec`].
    ///
    /// Only Q8_0, Q4_0 and Q4_1 have integer kernels; the other types run
    /// the f32 path, so this is always safe to call.
    ///
    /// # Panics
    /// If `x.len() != cols` or `y.len() != rows`.
    pub fn matvec_q8act(&self, x: &[f32], y: &mut [f32]) {
        self.matvec_q8act_with(x, y, Kernel::Auto)
    }

    /// [`QuantMatrix::matvec_q8act`] on the chosen kernels.
    pub fn matvec_q8act_with(&self, x: &[f32], y: &mut [f32], kernel: Kernel) {
        self.check_vec(x, y);
        q8act::matvec(self, x, y, kernel);
    }

    /// Batched product for prefill: `x` is `n × cols` row-major (one token per
    /// row), `y` gets `n × rows`: `y[t] = W x[t]`.
    ///
    /// Each chunk of weight rows is dequantized once into an f32 tile (exact
    /// weights) and multiplied against all `n` tokens with `gemm`; chunks run
    /// in parallel.
    ///
    /// # Panics
    /// If `x.len() != n * cols` or `y.len() != n * rows`.
    pub fn matmul(&self, x: &[f32], n: usize, y: &mut [f32]) {
        self.matmul_with(x, n, y, Kernel::Auto)
    }

    /// [`QuantMatrix::matmul`] on the chosen kernels (for the tile
    /// dequantizer, and for `n` small enough to run as matrix-vector products).
    pub fn matmul_with(&self, x: &[f32], n: usize, y: &mut [f32], kernel: Kernel) {
        assert_eq!(x.len(), n * self.cols, "matmul: x must be n × cols = {n} × {}", self.cols);
        assert_eq!(y.len(), n * self.rows, "matmul: y must be n × rows = {n} × {}", self.rows);
        matmul::matmul(self, x, n, y, kernel);
    }

    fn check_vec(&self, x: &[f32], y: &[f32]) {
        assert_eq!(x.len(), self.cols, "matvec: x must have cols = {} values", self.cols);
        assert_eq!(y.len(), self.rows, "matvec: y must have rows = {} values", self.rows);
    }
}

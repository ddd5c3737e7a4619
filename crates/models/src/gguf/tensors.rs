//! Tensor infos: name, dims, type and data offset, each checked against the
//! data section before the file is accepted.

use super::dtype::GgmlDType;
use super::reader::{invalid, Reader};
use crate::error::Result;

/// ggml tensors have at most four dimensions; more is a corrupt file, and the
/// cap bounds the dims allocation.
const MAX_DIMS: u32 = 4;

/// Where one tensor is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor name, e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// Dimensions in ggml order: `dims[0]` is the innermost (contiguous) one,
    /// so a PyTorch `[rows, cols]` weight is stored as `[cols, rows]`.
    pub dims: Vec<u64>,
    /// The stored type.
    pub dtype: GgmlDType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
    /// Number of values (product of `dims`).
    pub n_elements: u64,
    /// Number of bytes the data occupies.
    pub n_bytes: u64,
}

impl TensorInfo {
    /// The shape in row-major (PyTorch/NumPy) order: `dims` reversed.
    pub fn shape(&self) -> Vec<usize> {
        // dims were checked to fit the file, hence usize, at parse time.
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// Reads one tensor info; sizes are validated here, placement (offset,
    /// alignment, bounds) by [`check_placement`] once the data section is known.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<TensorInfo> {
        let name = r.string("tensor name")?;
        let dims_at = r.pos();
        let n_dims = r.u32("tensor dimension count")?;
        if n_dims > MAX_DIMS {
            return Err(invalid(
                dims_at,
                format!("tensor {name:?} has {n_dims} dimensions; at most {MAX_DIMS} allowed"),
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.u64("tensor dimension")?);
        }
        let type_at = r.pos();
        let type_id = r.u32("tensor type")?;
        let dtype = GgmlDType::from_id(type_id).ok_or_else(|| {
            invalid(type_at, format!("tensor {name:?} has unknown or unsupported ggml type id {type_id}"))
        })?;
        let offset = r.u64("tensor data offset")?;
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| invalid(dims_at, format!("tensor {name:?} dims {dims:?} overflow: too many elements")))?;
        let block = dtype.block_size();
        // Blocks run along the innermost dimension, so it must be whole blocks.
        let inner = dims.first().copied().unwrap_or(1);
        if !inner.is_multiple_of(block) {
            return Err(invalid(
                dims_at,
                format!("tensor {name:?} of type {dtype:?} has inner dimension {inner}, not a multiple of its block size {block}"),
            ));
        }
        let n_bytes = (n_elements / block)
            .checked_mul(dtype.block_bytes())
            .ok_or_else(|| invalid(dims_at, format!("tensor {name:?} dims {dims:?} overflow: too many bytes")))?;
        Ok(TensorInfo { name, dims, dtype, offset, n_elements, n_bytes })
    }
}

/// Checks that `info` is aligned and lies inside the data section, which
/// starts at `data_start` and ends at `file_len`. `info_at` is where its info
/// was read, for the error.
pub(crate) fn check_placement(
    info: &TensorInfo,
    info_at: usize,
    alignment: u64,
    data_start: u64,
    file_len: u64,
) -> Result<()> {
    if !info.offset.is_multiple_of(alignment) {
        return Err(invalid(
            info_at,
            format!(
                "tensor {:?} data offset {} is not a multiple of the alignment {alignment}",
                info.name, info.offset
            ),
        ));
    }
    let end = data_start.checked_add(info.offset).and_then(|s| s.checked_add(info.n_bytes));
    match end {
        Some(end) if end <= file_len => Ok(()),
        _ => Err(invalid(
            info_at,
            format!(
                "tensor {:?} data ({} bytes at data offset {}) runs past the end of the file: the data section holds {} bytes",
                info.name,
                info.n_bytes,
                info.offset,
                file_len.saturating_sub(data_start)
            ),
        )),
    }
}

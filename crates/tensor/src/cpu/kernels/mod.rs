//! CPU kernels. Each takes the run's [`Mem`] and reads/writes operands by id.

mod attention;
mod conv;
mod elementwise;
mod gemm;
mod layout;
mod norm;
mod packed_gemm;
mod pool;

pub(crate) use packed_gemm::PackedWeights;

use super::instr::Instr;
use super::memory::Mem;
use crate::Result;

/// Below this many elements a kernel runs on one thread: splitting costs more.
pub(crate) const PAR_MIN_ELEMS: usize = 1 << 15;

/// Runs one instruction.
pub(crate) fn execute(instr: &Instr, mem: &Mem) -> Result<()> {
    match instr {
        Instr::Gemm(g) => gemm::gemm(g, mem),
        Instr::BatchMatmul { a, b, out, m, n, k, offsets } => {
            gemm::batch_matmul(*a, *b, *out, *m, *n, *k, offsets, mem)
        }
        Instr::Unary { kind, x, out } => {
            elementwise::unary(*kind, mem.f32(*x), mem.f32_mut(*out));
            Ok(())
        }
        Instr::Binary { kind, a, b, shape, out } => elementwise::binary(*kind, a, b, shape, *out, mem),
        Instr::Softmax { x, out, outer, len, inner } => {
            norm::softmax(mem.f32(*x), mem.f32_mut(*out), *outer, *len, *inner);
            Ok(())
        }
        Instr::LayerNorm { x, scale, bias, cols, epsilon, out } => {
            norm::layer_norm(
                mem.f32(*x),
                scale.map(|s| mem.f32(s)),
                bias.map(|b| mem.f32(b)),
                *cols,
                *epsilon,
                mem.f32_mut(*out),
            );
            Ok(())
        }
        Instr::Reduce { kind, x, shape, out_strides, count, out } => {
            norm::reduce(*kind, mem.f32(*x), shape, out_strides, *count, mem.f32_mut(*out));
            Ok(())
        }
        Instr::Gather { table, indices, out, outer, axis_len, inner_bytes } => layout::gather(
            mem.bytes(*table),
            &mem.index_reader(*indices)?,
            mem.bytes_mut(*out),
            *outer,
            *axis_len,
            *inner_bytes,
        ),
        Instr::Copy { src, shape, elem, out } => {
            let dst = mem.bytes_mut(*out);
            let dst_strides = crate::shape::contiguous_strides(shape);
            layout::copy_strided(*elem, mem.bytes(src.operand), src.offset, &src.strides, shape, dst, 0, &dst_strides);
            Ok(())
        }
        Instr::Concat { parts, axis, elem, out_shape, out } => {
            layout::concat(parts, *axis, *elem, out_shape, mem.bytes_mut(*out), mem);
            Ok(())
        }
        Instr::Where { cond, on_true, on_false, shape, elem, out } => {
            layout::select(cond, on_true, on_false, shape, *elem, mem.bytes_mut(*out), mem);
            Ok(())
        }
        Instr::Cast { x, from, to, out } => elementwise::cast(mem.bytes(*x), *from, *to, mem.bytes_mut(*out)),
        Instr::Conv2d(c) => {
            conv::conv2d(c, mem);
            Ok(())
        }
        Instr::Pool2d { kind, x, win, out } => {
            pool::pool2d(*kind, win, mem.f32(*x), mem.f32_mut(*out));
            Ok(())
        }
        Instr::Clamp { x, min, max, out } => {
            elementwise::clamp(mem.f32(*x), *min, *max, mem.f32_mut(*out));
            Ok(())
        }
        Instr::Attention { q, k, v, options, starts, mask, out } => {
            attention::attention(*q, *k, *v, *mask, options, starts, mem.f32_mut(*out), mem);
            Ok(())
        }
    }
}

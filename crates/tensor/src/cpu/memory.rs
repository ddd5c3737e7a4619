//! Where values live during a run: the arena, constants and caller inputs.

use super::kernels::PackedWeights;
use crate::{DType, Error, Result};
use bytes::Bytes;
use std::sync::Arc;

/// Location of a value during a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loc {
    /// Byte offset into the run's arena.
    Arena(usize),
    /// Index into the executable's constants.
    Const(usize),
    /// Index into the inputs given to `run`.
    Input(usize),
    /// Not materialized (a view another kernel reads through its base).
    None,
}

/// Arena alignment in bytes: a cache line, enough for any dtype and SIMD load.
pub(crate) const ALIGN: usize = 64;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; ALIGN]);

/// A reusable, 64-byte aligned scratch buffer. Executables keep one and grow
/// it only when a larger plan runs, so steady-state runs allocate nothing.
#[derive(Default)]
pub(crate) struct Arena {
    lines: Vec<Line>,
}

impl Arena {
    /// Makes sure the arena holds at least `bytes` bytes.
    pub(crate) fn reserve(&mut self, bytes: usize) {
        let lines = bytes.div_ceil(ALIGN);
        if self.lines.len() < lines {
            self.lines.resize(lines, Line([0; ALIGN]));
        }
    }

    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.lines.as_mut_ptr().cast()
    }

    fn len(&self) -> usize {
        self.lines.len() * ALIGN
    }
}

/// Per-operand storage facts fixed at compile time.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    pub loc: Loc,
    pub bytes: usize,
    pub dtype: DType,
}

/// The memory of one run. Kernels borrow inputs and outputs from it by operand.
///
/// The memory planner guarantees that an instruction's output never overlaps
/// a value it reads, which is what makes handing out `&mut` for the output
/// beside `&` for the inputs sound.
pub(crate) struct Mem<'a> {
    arena: *mut u8,
    arena_len: usize,
    slots: &'a [Slot],
    consts: &'a [Bytes],
    inputs: &'a [&'a [u8]],
    /// Constant matrices packed for [`super::kernels::packed_gemm`].
    pub packed: &'a [Arc<PackedWeights>],
}

// SAFETY: Mem only hands out disjoint regions (see above); kernels that split
// work across threads write disjoint parts of their own output.
unsafe impl Sync for Mem<'_> {}

impl<'a> Mem<'a> {
    pub(crate) fn new(
        arena: &'a mut Arena,
        slots: &'a [Slot],
        consts: &'a [Bytes],
        inputs: &'a [&'a [u8]],
        packed: &'a [Arc<PackedWeights>],
    ) -> Self {
        Mem { arena_len: arena.len(), arena: arena.as_mut_ptr(), slots, consts, inputs, packed }
    }

    /// The bytes of operand `id`.
    pub(crate) fn bytes(&self, id: usize) -> &[u8] {
        let slot = &self.slots[id];
        match slot.loc {
            Loc::Arena(off) => {
                assert!(off + slot.bytes <= self.arena_len, "arena slot out of range");
                // SAFETY: in range (checked) and not written while read (planner).
                unsafe { std::slice::from_raw_parts(self.arena.add(off), slot.bytes) }
            }
            Loc::Const(i) => &self.consts[i][..],
            Loc::Input(i) => self.inputs[i],
            Loc::None => panic!("operand {id} is a view and has no storage of its own"),
        }
    }

    /// The bytes of operand `id`, which must live in the arena, for writing.
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn bytes_mut(&self, id: usize) -> &mut [u8] {
        let slot = &self.slots[id];
        match slot.loc {
            Loc::Arena(off) => {
                assert!(off + slot.bytes <= self.arena_len, "arena slot out of range");
                // SAFETY: in range; the planner gives each live output a region
                // no other live value uses, and each instruction writes only its output.
                unsafe { std::slice::from_raw_parts_mut(self.arena.add(off), slot.bytes) }
            }
            other => panic!("operand {id} at {other:?} is not writable"),
        }
    }

    /// Operand `id` as `f32`.
    pub(crate) fn f32(&self, id: usize) -> &[f32] {
        bytemuck::cast_slice(self.bytes(id))
    }

    /// Operand `id` as `f32`, for writing.
    #[allow(clippy::mut_from_ref)]
    pub(crate) fn f32_mut(&self, id: usize) -> &mut [f32] {
        bytemuck::cast_slice_mut(self.bytes_mut(id))
    }

    /// Integer operand `id` (int32, uint32 or int64) read as i64 at `i`.
    pub(crate) fn index_reader(&self, id: usize) -> Result<IndexReader<'_>> {
        let bytes = self.bytes(id);
        Ok(match self.slots[id].dtype {
            DType::Int32 => IndexReader::I32(bytemuck::cast_slice(bytes)),
            DType::Uint32 => IndexReader::U32(bytemuck::cast_slice(bytes)),
            DType::Int64 => IndexReader::I64(bytemuck::cast_slice(bytes)),
            other => return Err(Error::dtype("gather", "integer indices", other)),
        })
    }
}

/// Integer indices of any supported width, read as `i64`.
pub(crate) enum IndexReader<'a> {
    I32(&'a [i32]),
    U32(&'a [u32]),
    I64(&'a [i64]),
}

impl IndexReader<'_> {
    pub(crate) fn get(&self, i: usize) -> i64 {
        match self {
            IndexReader::I32(v) => v[i] as i64,
            IndexReader::U32(v) => v[i] as i64,
            IndexReader::I64(v) => v[i],
        }
    }
}

/// A raw pointer that may cross threads; users write disjoint regions only.
#[derive(Clone, Copy)]
pub(crate) struct SendPtr<T>(pub *mut T);

impl<T> SendPtr<T> {
    /// The pointer. (A method, so closures capture the `Send` wrapper rather
    /// than the bare pointer field.)
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}
// SAFETY: see the type's doc; every use writes a region no other thread touches.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

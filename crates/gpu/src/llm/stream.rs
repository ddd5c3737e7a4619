//! Recording many kernel dispatches into one command encoder, with buffers that stay on
//! the device, and recycling activation buffers.
//!
//! [`crate::KernelRunner::run`] uploads, dispatches and reads back for every launch —
//! right for tests and one-off ops, far too slow for a decode step of hundreds of
//! dispatches. [`LlmStream`] instead appends each dispatch (and buffer copy) to an open
//! encoder and submits only when the host needs a result ([`LlmStream::read`]) or the
//! encoder has grown long. WebGPU orders the passes of an encoder and makes each see
//! the writes of the previous ones, so ops chain without any synchronization here.
//!
//! Uniforms go to one ring buffer, a slot per dispatch at the device's uniform offset
//! alignment, written with one `write_buffer` just before the submission that uses
//! it (a queue write lands before the command buffers of the next submission, and
//! after those already submitted, so slots are reused safely after each submission).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::{GpuError, Result};
use crate::kernels::KernelRunner;

/// Uniform slots per submission; a stream submits when they run out.
const UNIFORM_SLOTS: u64 = 1024;
/// Largest `Params` of an `llm_*` kernel, bytes.
const MAX_UNIFORM: u64 = 256;
/// Dispatches per submission at most, so a long prefill is not one huge command buffer.
const MAX_RECORDED: usize = 512;

/// Records dispatches and copies into one command encoder; see the module docs.
#[derive(Debug)]
pub struct LlmStream {
    runner: Arc<KernelRunner>,
    encoder: Option<wgpu::CommandEncoder>,
    ring: wgpu::Buffer,
    slot_size: u64,
    staged: Vec<u8>,
    recorded: usize,
    submissions: u64,
}

impl LlmStream {
    /// A stream on `runner`'s device.
    pub fn new(runner: Arc<KernelRunner>) -> Result<Self> {
        let align = u64::from(runner.context().limits().min_uniform_buffer_offset_alignment).max(16);
        let slot_size = MAX_UNIFORM.next_multiple_of(align);
        let device = runner.context().device();
        let ring = crate::kernels::scoped(device, "llm uniforms", || {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("llm uniforms"),
                size: slot_size * UNIFORM_SLOTS,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        Ok(LlmStream { runner, encoder: None, ring, slot_size, staged: Vec::new(), recorded: 0, submissions: 0 })
    }

    /// The runner (pipelines, buffer creation).
    pub fn runner(&self) -> &Arc<KernelRunner> {
        &self.runner
    }

    /// Submissions so far (each [`LlmStream::flush`] that had work).
    pub fn submissions(&self) -> u64 {
        self.submissions
    }

    fn encoder(&mut self) -> &mut wgpu::CommandEncoder {
        let device = self.runner.context().device();
        self.encoder.get_or_insert_with(|| {
            device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("llm stream") })
        })
    }

    /// Records one dispatch of kernel `id` (compiled with `constants`) with the `Params`
    /// bytes `uniform` and `buffers` bound whole in binding order (the inputs, then the
    /// output). A dispatch with no workgroups records nothing.
    pub fn dispatch(
        &mut self,
        id: &str,
        constants: &[(&str, f64)],
        uniform: &[u8],
        buffers: &[&wgpu::Buffer],
        workgroups: [u32; 3],
    ) -> Result<()> {
        let kernel = self.runner.pipeline(id, constants)?;
        let spec = kernel.spec;
        let bad = |message: String| GpuError::BadLaunch { kernel: spec.id.into(), message };
        if uniform.len() as u64 != spec.uniform_size || spec.uniform_size > MAX_UNIFORM {
            return Err(bad(format!(
                "uniform of {} bytes, the kernel's Params is {}",
                uniform.len(),
                spec.uniform_size
            )));
        }
        if buffers.len() + 1 != spec.bindings.len() {
            return Err(bad(format!("{} buffers given, the kernel binds {}", buffers.len(), spec.bindings.len() - 1)));
        }
        let max = self.runner.context().limits().max_compute_workgroups_per_dimension;
        if workgroups.iter().any(|&w| w > max) {
            return Err(bad(format!("{workgroups:?} workgroups exceed the limit of {max} per dimension")));
        }
        if workgroups.contains(&0) {
            return Ok(());
        }
        if self.staged.len() as u64 >= self.slot_size * UNIFORM_SLOTS || self.recorded >= MAX_RECORDED {
            self.flush()?;
        }
        let offset = self.staged.len() as u64;
        self.staged.extend_from_slice(uniform);
        self.staged.resize((offset + self.slot_size) as usize, 0);
        let mut resources = vec![wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.ring,
            offset,
            size: wgpu::BufferSize::new(spec.uniform_size),
        })];
        resources.extend(buffers.iter().map(|b| b.as_entire_binding()));
        let bind_group = self.runner.bind_group_resources(&kernel, &resources)?;
        let encoder = self.encoder();
        let mut pass =
            encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(spec.id), timestamp_writes: None });
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &bind_group, &[]);
        pass.dispatch_workgroups(workgroups[0], workgroups[1], workgroups[2]);
        drop(pass);
        self.recorded += 1;
        Ok(())
    }

    /// Records a copy of `bytes` (a multiple of 4) from `src` at `src_offset` to `dst` at
    /// `dst_offset` (both multiples of 4), ordered with the dispatches around it.
    pub fn copy(
        &mut self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        bytes: u64,
    ) -> Result<()> {
        if bytes == 0 {
            return Ok(());
        }
        let fits = src_offset.checked_add(bytes).is_some_and(|e| e <= src.size())
            && dst_offset.checked_add(bytes).is_some_and(|e| e <= dst.size());
        if !fits || !(bytes | src_offset | dst_offset).is_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT) {
            return Err(GpuError::BadLaunch {
                kernel: "copy".into(),
                message: format!(
                    "{bytes} bytes from offset {src_offset} of {} to offset {dst_offset} of {} (sizes and offsets must be multiples of 4, inside the buffers)",
                    src.size(),
                    dst.size()
                ),
            });
        }
        self.encoder().copy_buffer_to_buffer(src, src_offset, dst, dst_offset, bytes);
        self.recorded += 1;
        Ok(())
    }

    /// Submits everything recorded so far (nothing when nothing was recorded).
    pub fn flush(&mut self) -> Result<()> {
        let Some(encoder) = self.encoder.take() else {
            return Ok(());
        };
        if !self.staged.is_empty() {
            self.runner.context().queue().write_buffer(&self.ring, 0, &self.staged);
        }
        self.staged.clear();
        self.recorded = 0;
        self.submissions += 1;
        self.runner.submit(encoder)?;
        Ok(())
    }

    /// Submits what was recorded and copies the first `bytes` of `buffer` to the host.
    pub fn read(&mut self, buffer: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        self.flush()?;
        self.runner.read_buffer(buffer, bytes)
    }
}

type Free = Arc<Mutex<HashMap<u64, Vec<wgpu::Buffer>>>>;

/// Most idle buffers kept per size.
const KEEP_PER_SIZE: usize = 16;

/// Recycles storage buffers by size: a decode step asks for the same few sizes every
/// token, and creating buffers costs far more than reusing them. A [`PooledBuffer`]
/// goes back to the pool when dropped. Reuse is safe while earlier recorded work still
/// reads the buffer: WebGPU runs the passes of a queue in order, so a later dispatch
/// writing it runs after the earlier reads.
#[derive(Debug, Clone)]
pub struct BufferPool {
    runner: Arc<KernelRunner>,
    free: Free,
}

impl BufferPool {
    /// An empty pool on `runner`'s device.
    pub fn new(runner: Arc<KernelRunner>) -> Self {
        BufferPool { runner, free: Arc::default() }
    }

    /// A storage buffer of at least `bytes` (its size is `bytes` padded to 16, at least
    /// 16, so kernels may read it as vectors); its contents are whatever was there before.
    pub fn get(&self, label: &str, bytes: u64) -> Result<PooledBuffer> {
        let size = bytes.max(16).next_multiple_of(16);
        let reused = self.free.lock().unwrap_or_else(|p| p.into_inner()).get_mut(&size).and_then(Vec::pop);
        let buffer = match reused {
            Some(b) => b,
            None => self.runner.empty_storage_buffer(label, size)?,
        };
        Ok(PooledBuffer { buffer: Some(buffer), free: self.free.clone() })
    }

    /// Idle buffers held, all sizes.
    pub fn idle(&self) -> usize {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).values().map(Vec::len).sum()
    }
}

/// A storage buffer from a [`BufferPool`], returned to it on drop.
#[derive(Debug)]
pub struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    free: Free,
}

impl PooledBuffer {
    /// The buffer.
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("present until dropped")
    }
}

impl std::ops::Deref for PooledBuffer {
    type Target = wgpu::Buffer;

    fn deref(&self) -> &wgpu::Buffer {
        self.buffer()
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let Some(buffer) = self.buffer.take() {
            let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
            let list = free.entry(buffer.size()).or_default();
            if list.len() < KEEP_PER_SIZE {
                list.push(buffer);
            }
        }
    }
}

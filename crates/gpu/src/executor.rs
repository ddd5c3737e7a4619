//! The native plan executor: creates a plan's buffers, pipelines and bind
//! groups once ([`LoadedPlan::load`]), then runs it as often as asked with
//! one command encoder and one compute pass per run, reading back only the
//! outputs ([`LoadedPlan::run`]).
//!
//! Weights are uploaded once per model into [`DeviceWeights`] and shared by
//! every plan of that model (one plan per input shape).

use crate::error::{GpuError, Result};
use crate::kernels::{kernel, CompiledKernel, KernelRunner};
use crate::plan::{BufferRole, Plan, PlanTensor, PLAN_VERSION};
use ipfs_accelerate_tensor::graph::Weights;
use ipfs_accelerate_tensor::{DType, Tensor};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A model's weights on the device, by name, uploaded on first use.
#[derive(Debug, Default)]
pub struct DeviceWeights {
    buffers: Mutex<HashMap<String, Arc<wgpu::Buffer>>>,
}

impl DeviceWeights {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes uploaded so far.
    pub fn bytes(&self) -> u64 {
        self.buffers.lock().unwrap_or_else(|p| p.into_inner()).values().map(|b| b.size()).sum()
    }

    /// The buffer of weight `name` stored as `dtype` (float32, or float16),
    /// converting and uploading it on first use.
    fn get(
        &self,
        runner: &KernelRunner,
        name: &str,
        dtype: DType,
        rows: Option<[usize; 2]>,
        weights: &Weights,
        size: u64,
    ) -> Result<Arc<wgpu::Buffer>> {
        let key = format!("{name}\0{dtype}\0{rows:?}");
        let mut buffers = self.buffers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(buffer) = buffers.get(&key) {
            return Ok(buffer.clone());
        }
        let tensor = weight_tensor(weights, name, dtype, rows)?;
        let bytes = tensor.as_bytes();
        if (bytes.len() as u64).max(4).next_multiple_of(4) != size {
            return Err(GpuError::Plan(format!(
                "weight {name:?} has {} bytes but the plan expects {size}",
                bytes.len()
            )));
        }
        let buffer = Arc::new(runner.storage_buffer(name, bytes)?);
        buffers.insert(key, buffer.clone());
        Ok(buffer)
    }
}

/// Weight `name` as a plan stores it on the device: `dtype` (float32 or
/// float16, converted here when the model stores the other) and only `rows`
/// when given. The browser bridge uses the same bytes.
pub fn weight_tensor(weights: &Weights, name: &str, dtype: DType, rows: Option<[usize; 2]>) -> Result<Tensor> {
    let tensor = weights.get(name).ok_or_else(|| GpuError::Plan(format!("weight {name:?} is not in the model")))?;
    let bad = |e: ipfs_accelerate_tensor::Error| GpuError::Plan(format!("weight {name:?}: {e}"));
    let block;
    let tensor = match rows {
        Some(rows) => {
            block = row_block(tensor, rows)
                .ok_or_else(|| GpuError::Plan(format!("weight {name:?} {} has no rows {rows:?}", tensor.shape())))?;
            &block
        }
        None => tensor,
    };
    // Widen or narrow float storage once, here.
    match (tensor.dtype(), dtype) {
        (DType::Float32 | DType::Int32, DType::Float32) | (DType::Float16, DType::Float16) => Ok(tensor.clone()),
        (DType::Float16, DType::Float32) => tensor.to_f32().map_err(bad),
        (DType::Float32, DType::Float16) => {
            let halves: Vec<half::f16> =
                tensor.to_f32_vec().map_err(bad)?.into_iter().map(half::f16::from_f32).collect();
            Tensor::from_f16(tensor.shape().clone(), &halves).map_err(bad)
        }
        (stored, wanted) => Err(GpuError::Plan(format!("weight {name:?} is {stored}; the plan wants it as {wanted}"))),
    }
}

/// Rows `[start, start + count)` of `tensor`'s first axis, as a tensor.
fn row_block(tensor: &Tensor, [start, count]: [usize; 2]) -> Option<Tensor> {
    let dims = tensor.shape().dims();
    let rows = *dims.first()?;
    if start.checked_add(count)? > rows {
        return None;
    }
    let row_bytes = tensor.as_bytes().len() / rows.max(1);
    let mut shape = dims.to_vec();
    shape[0] = count;
    let bytes = tensor.bytes().slice(start * row_bytes..(start + count) * row_bytes);
    Tensor::from_bytes(tensor.dtype(), shape, bytes).ok()
}

/// One dispatch, ready to record.
#[derive(Debug)]
struct ReadyDispatch {
    kernel: Arc<CompiledKernel>,
    bind_group: wgpu::BindGroup,
    workgroups: [u32; 3],
}

/// A plan with its device objects created.
#[derive(Debug)]
pub struct LoadedPlan {
    buffers: Vec<Arc<wgpu::Buffer>>,
    dispatches: Vec<ReadyDispatch>,
    inputs: Vec<PlanTensor>,
    outputs: Vec<PlanTensor>,
    /// Keeps the uniform data alive for the bind groups.
    _uniforms: Option<wgpu::Buffer>,
}

impl LoadedPlan {
    /// Checks `plan` against the kernel library and the device limits (a
    /// plan may come from elsewhere), creates its buffers (weights from
    /// `weights` through `device_weights`), compiles its pipelines (cached by
    /// the runner) and builds every bind group.
    pub fn load(runner: &KernelRunner, plan: &Plan, weights: &Weights, device_weights: &DeviceWeights) -> Result<Self> {
        if plan.version != PLAN_VERSION {
            return Err(GpuError::Plan(format!(
                "plan format version {} (this build runs version {PLAN_VERSION}); compile the graph again",
                plan.version
            )));
        }
        let limits = runner.context().limits();
        let mut buffers = Vec::with_capacity(plan.buffers.len());
        for (i, b) in plan.buffers.iter().enumerate() {
            if b.size == 0 || b.size % 4 != 0 {
                return Err(GpuError::Plan(format!("buffer {i} has {} bytes (not a positive multiple of 4)", b.size)));
            }
            let buffer = match &b.role {
                BufferRole::Weight { name, dtype, rows } => {
                    device_weights.get(runner, name, *dtype, *rows, weights, b.size)?
                }
                BufferRole::Constant { words } => {
                    if words.len() as u64 * 4 != b.size {
                        return Err(GpuError::Plan(format!(
                            "constant buffer {i} holds {} words for {} bytes",
                            words.len(),
                            b.size
                        )));
                    }
                    Arc::new(runner.storage_buffer(&format!("constant {i}"), bytemuck::cast_slice(words))?)
                }
                BufferRole::Input { name } => Arc::new(runner.empty_storage_buffer(name, b.size)?),
                BufferRole::Scratch => Arc::new(runner.empty_storage_buffer(&format!("scratch {i}"), b.size)?),
            };
            buffers.push(buffer);
        }
        for t in plan.inputs.iter().chain(&plan.outputs) {
            let fits = buffers.get(t.buffer as usize).is_some_and(|b| tensor_bytes(t) <= b.size());
            if !fits {
                return Err(GpuError::Plan(format!(
                    "tensor {:?} does not fit the buffer {} it names",
                    t.name, t.buffer
                )));
            }
        }

        // Every dispatch's uniform in one buffer, each at an aligned offset.
        let align = u64::from(limits.min_uniform_buffer_offset_alignment).max(4);
        let mut uniform_bytes: Vec<u8> = Vec::new();
        let mut offsets = Vec::with_capacity(plan.dispatches.len());
        for d in &plan.dispatches {
            let start = (uniform_bytes.len() as u64).next_multiple_of(align);
            uniform_bytes.resize(start as usize, 0);
            uniform_bytes.extend_from_slice(bytemuck::cast_slice(&d.uniform));
            offsets.push(start);
        }
        let uniforms =
            if uniform_bytes.is_empty() { None } else { Some(runner.uniform_buffer("uniforms", &uniform_bytes)?) };

        let mut dispatches = Vec::with_capacity(plan.dispatches.len());
        for (i, d) in plan.dispatches.iter().enumerate() {
            let spec = kernel(&d.kernel)?;
            let bad = |message: String| GpuError::Plan(format!("dispatch {i} ({}): {message}", d.kernel));
            if d.uniform.len() as u64 * 4 != spec.uniform_size {
                return Err(bad(format!(
                    "uniform of {} bytes, the kernel's is {}",
                    d.uniform.len() * 4,
                    spec.uniform_size
                )));
            }
            if d.bindings.len() + 1 != spec.bindings.len() {
                return Err(bad(format!(
                    "{} buffers for {} storage bindings",
                    d.bindings.len(),
                    spec.bindings.len() - 1
                )));
            }
            let max = limits.max_compute_workgroups_per_dimension;
            if d.workgroups.iter().any(|&w| w > max) {
                return Err(bad(format!("{:?} workgroups exceed this device's {max} per dimension", d.workgroups)));
            }
            let output = d.bindings.last().copied().flatten();
            if output.is_none() || d.bindings[..d.bindings.len() - 1].contains(&output) {
                return Err(bad("the output must be a buffer that no input of the same dispatch uses".into()));
            }
            if let Some(BufferRole::Weight { .. } | BufferRole::Constant { .. } | BufferRole::Input { .. }) =
                output.and_then(|o| plan.buffers.get(o as usize)).map(|b| &b.role)
            {
                return Err(bad("it writes a weight, constant or input buffer".into()));
            }
            let constants: Vec<(&str, f64)> = d.constants.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            let compiled = runner.pipeline(&d.kernel, &constants)?;
            let uniforms = uniforms.as_ref().expect("dispatches have uniforms");
            let mut resources = vec![wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: uniforms,
                offset: offsets[i],
                size: wgpu::BufferSize::new(spec.uniform_size),
            })];
            for b in &d.bindings {
                let buffer = match b {
                    Some(index) => {
                        buffers.get(*index as usize).ok_or_else(|| bad(format!("buffer {index} does not exist")))?
                    }
                    None => runner.placeholder(),
                };
                resources.push(buffer.as_entire_binding());
            }
            let bind_group = runner.bind_group_resources(&compiled, &resources)?;
            dispatches.push(ReadyDispatch { kernel: compiled, bind_group, workgroups: d.workgroups });
        }
        Ok(LoadedPlan {
            buffers,
            dispatches,
            inputs: plan.inputs.clone(),
            outputs: plan.outputs.clone(),
            _uniforms: uniforms,
        })
    }

    /// Runs the plan on named inputs (every plan input, with its exact dtype
    /// and shape) and returns the outputs in the plan's order.
    pub fn run(&self, runner: &KernelRunner, inputs: &[(&str, &Tensor)]) -> Result<Vec<Tensor>> {
        let queue = runner.context().queue();
        for expected in &self.inputs {
            let (_, tensor) = inputs
                .iter()
                .find(|(name, _)| *name == expected.name)
                .ok_or_else(|| GpuError::Plan(format!("input {:?} was not given", expected.name)))?;
            if tensor.dtype() != expected.dtype || tensor.shape().dims() != expected.shape.as_slice() {
                return Err(GpuError::Plan(format!(
                    "input {:?} is {}{} but the plan was compiled for {}{:?}",
                    expected.name,
                    tensor.dtype(),
                    tensor.shape(),
                    expected.dtype,
                    expected.shape
                )));
            }
            let bytes = tensor.as_bytes();
            if !bytes.is_empty() {
                queue.write_buffer(&self.buffers[expected.buffer as usize], 0, bytes);
            }
        }
        let device = runner.context().device();
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("plan") });
        {
            // One pass: WebGPU orders the dispatches of a pass and makes each
            // see the writes of the previous ones.
            let mut pass = encoder
                .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("plan"), timestamp_writes: None });
            for d in &self.dispatches {
                pass.set_pipeline(&d.kernel.pipeline);
                pass.set_bind_group(0, &d.bind_group, &[]);
                pass.dispatch_workgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
            }
        }
        runner.submit(encoder)?;
        let mut outputs = Vec::with_capacity(self.outputs.len());
        for out in &self.outputs {
            let bytes = runner.read_buffer(&self.buffers[out.buffer as usize], tensor_bytes(out))?;
            let tensor = Tensor::copy_from_bytes(out.dtype, out.shape.clone(), &bytes)
                .map_err(|e| GpuError::Plan(format!("output {:?}: {e}", out.name)))?;
            outputs.push(tensor);
        }
        Ok(outputs)
    }

    /// Number of dispatches per run.
    pub fn dispatch_count(&self) -> usize {
        self.dispatches.len()
    }
}

/// Bytes of a plan tensor's data (4-byte elements).
fn tensor_bytes(t: &PlanTensor) -> u64 {
    t.shape.iter().product::<usize>() as u64 * 4
}

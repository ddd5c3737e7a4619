//! Adapter discovery and device creation.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{GpuError, Result};

/// Environment variable that picks an adapter: an index into [`GpuContext::adapters`]
/// or a case-insensitive substring of the adapter name (e.g. `llvmpipe`, `nvidia`).
pub const ADAPTER_ENV: &str = "IPFS_ACCELERATE_ADAPTER";

/// Which adapter [`GpuContext::new`] opens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AdapterSelector {
    /// wgpu's choice with `PowerPreference::HighPerformance` (discrete before integrated
    /// before software).
    #[default]
    HighPerformance,
    /// wgpu's choice with `PowerPreference::LowPower`.
    LowPower,
    /// The adapter at this index of [`GpuContext::adapters`].
    Index(usize),
    /// The first adapter whose name contains this (case-insensitive).
    Name(String),
}

impl AdapterSelector {
    /// Parses a selector: a number is an index, anything else a name substring;
    /// `high-performance` / `low-power` name the power preferences.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        match text {
            "" | "high-performance" => AdapterSelector::HighPerformance,
            "low-power" => AdapterSelector::LowPower,
            _ => match text.parse::<usize>() {
                Ok(index) => AdapterSelector::Index(index),
                Err(_) => AdapterSelector::Name(text.to_string()),
            },
        }
    }

    /// The selector from [`ADAPTER_ENV`], or the default when it is unset or empty.
    pub fn from_env() -> Self {
        std::env::var(ADAPTER_ENV).map(|v| Self::parse(&v)).unwrap_or_default()
    }
}

/// The limits that matter for compute, as the adapter (or device) reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLimits {
    /// Largest storage-buffer binding, bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer, bytes.
    pub max_buffer_size: u64,
    /// Largest uniform-buffer binding, bytes.
    pub max_uniform_buffer_binding_size: u64,
    /// Workgroup size limit in x.
    pub max_compute_workgroup_size_x: u32,
    /// Workgroup size limit in y.
    pub max_compute_workgroup_size_y: u32,
    /// Invocations per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroup (shared) memory, bytes.
    pub max_compute_workgroup_storage_size: u32,
    /// Workgroups per dispatch dimension.
    pub max_compute_workgroups_per_dimension: u32,
    /// Storage buffers one shader stage may bind.
    pub max_storage_buffers_per_shader_stage: u32,
    /// Alignment of storage-buffer binding offsets, bytes.
    pub min_storage_buffer_offset_alignment: u32,
}

impl From<&wgpu::Limits> for KeyLimits {
    fn from(l: &wgpu::Limits) -> Self {
        KeyLimits {
            max_storage_buffer_binding_size: l.max_storage_buffer_binding_size,
            max_buffer_size: l.max_buffer_size,
            max_uniform_buffer_binding_size: l.max_uniform_buffer_binding_size,
            max_compute_workgroup_size_x: l.max_compute_workgroup_size_x,
            max_compute_workgroup_size_y: l.max_compute_workgroup_size_y,
            max_compute_invocations_per_workgroup: l.max_compute_invocations_per_workgroup,
            max_compute_workgroup_storage_size: l.max_compute_workgroup_storage_size,
            max_compute_workgroups_per_dimension: l.max_compute_workgroups_per_dimension,
            max_storage_buffers_per_shader_stage: l.max_storage_buffers_per_shader_stage,
            min_storage_buffer_offset_alignment: l.min_storage_buffer_offset_alignment,
        }
    }
}

/// One adapter, as `devices` shows it (serializable for `--json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterReport {
    /// Position in [`GpuContext::adapters`]; what `IPFS_ACCELERATE_ADAPTER=<index>` selects.
    pub index: usize,
    /// Adapter name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// `vulkan`, `metal`, `dx12`, `gl`, …
    pub backend: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub device_type: String,
    /// Driver name, e.g. `llvmpipe`.
    pub driver: String,
    /// Driver details, e.g. `Mesa 22.3.6 (LLVM 15.0.6)`.
    pub driver_info: String,
    /// PCI vendor id (or backend-specific).
    pub vendor_id: u32,
    /// PCI device id (or backend-specific).
    pub device_id: u32,
    /// Features in WebGPU spelling where one exists (`shader-f16`, `timestamp-query`, …),
    /// other wgpu features in the same lower-case, dash-separated style.
    pub features: Vec<String>,
    /// Whether `shader-f16` is available (f16 storage and arithmetic in WGSL).
    pub shader_f16: bool,
    /// Key limits.
    pub limits: KeyLimits,
}

impl AdapterReport {
    fn new(index: usize, adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        let features = adapter.features();
        AdapterReport {
            index,
            name: info.name,
            backend: info.backend.to_str().to_string(),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver,
            driver_info: info.driver_info,
            vendor_id: info.vendor,
            device_id: info.device,
            features: feature_names(features),
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            limits: KeyLimits::from(&adapter.limits()),
        }
    }
}

/// `SHADER_F16 | TIMESTAMP_QUERY` → `["shader-f16", "timestamp-query"]`.
fn feature_names(features: wgpu::Features) -> Vec<String> {
    features.iter_names().map(|(name, _)| name.to_ascii_lowercase().replace('_', "-")).collect()
}

/// An open device: the adapter it came from, its device and queue.
///
/// Cheap to clone (wgpu handles are reference counted). Creating one is slow on
/// software adapters (tens to hundreds of milliseconds): make one per process and share it.
#[derive(Debug, Clone)]
pub struct GpuContext {
    adapter: wgpu::Adapter,
    device: wgpu::Device,
    queue: wgpu::Queue,
    report: Arc<AdapterReport>,
}

fn instance() -> wgpu::Instance {
    // Honours WGPU_BACKEND and friends, so a user can force e.g. Vulkan.
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle().with_env())
}

fn enumerate(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
}

fn no_adapter() -> GpuError {
    let detail = match std::env::var("WGPU_BACKEND") {
        Ok(b) => format!(" (WGPU_BACKEND={b})"),
        Err(_) => String::new(),
    };
    GpuError::NoAdapter { detail }
}

impl GpuContext {
    /// Every adapter wgpu can see, in the order that [`AdapterSelector::Index`] uses.
    /// An empty list is not an error.
    pub fn adapters() -> Vec<AdapterReport> {
        enumerate(&instance()).iter().enumerate().map(|(i, a)| AdapterReport::new(i, a)).collect()
    }

    /// Opens the adapter chosen by [`ADAPTER_ENV`] (high-performance by default).
    pub fn new() -> Result<Self> {
        Self::with_selector(&AdapterSelector::from_env())
    }

    /// Opens the adapter chosen by `selector`, requesting every limit the adapter has
    /// (not WebGPU's defaults: models need large storage buffers), and `shader-f16` and
    /// `pipeline-cache` (Vulkan only) when the adapter has them.
    pub fn with_selector(selector: &AdapterSelector) -> Result<Self> {
        let instance = instance();
        let adapters = enumerate(&instance);
        if adapters.is_empty() {
            return Err(no_adapter());
        }
        let (index, adapter) = match selector {
            AdapterSelector::HighPerformance | AdapterSelector::LowPower => {
                let power_preference = if *selector == AdapterSelector::LowPower {
                    wgpu::PowerPreference::LowPower
                } else {
                    wgpu::PowerPreference::HighPerformance
                };
                let chosen = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference,
                    force_fallback_adapter: false,
                    compatible_surface: None,
                    apply_limit_buckets: false,
                }))
                .map_err(|_| no_adapter())?;
                let info = chosen.get_info();
                let index = adapters.iter().position(|a| a.get_info() == info).unwrap_or(0);
                (index, chosen)
            }
            AdapterSelector::Index(i) => match adapters.get(*i) {
                Some(a) => (*i, a.clone()),
                None => return Err(not_found(selector, &adapters)),
            },
            AdapterSelector::Name(needle) => {
                let needle = needle.to_lowercase();
                match adapters.iter().position(|a| a.get_info().name.to_lowercase().contains(&needle)) {
                    Some(i) => (i, adapters[i].clone()),
                    None => return Err(not_found(selector, &adapters)),
                }
            }
        };
        Self::open(index, adapter)
    }

    fn open(index: usize, adapter: wgpu::Adapter) -> Result<Self> {
        let report = AdapterReport::new(index, &adapter);
        let required_features = adapter.features() & (wgpu::Features::SHADER_F16 | wgpu::Features::PIPELINE_CACHE);
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("ipfs-accelerate"),
            required_features,
            required_limits: adapter.limits(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&descriptor))
            .map_err(|e| GpuError::RequestDevice { adapter: report.name.clone(), message: e.to_string() })?;
        // wgpu's default handler panics on errors nobody captured; errors we care about
        // are captured with error scopes, anything else is logged, never a panic.
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            tracing::error!("uncaptured GPU error: {e}");
        }));
        device.set_device_lost_callback(|reason, message| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                tracing::error!("GPU device lost ({reason:?}): {message}");
            }
        });
        tracing::debug!(
            adapter = %report.name,
            backend = %report.backend,
            "opened GPU device"
        );
        Ok(GpuContext { adapter, device, queue, report: Arc::new(report) })
    }

    /// The adapter this context opened.
    pub fn adapter(&self) -> &wgpu::Adapter {
        &self.adapter
    }

    /// The device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The opened adapter's report (its `limits` are also the device's).
    pub fn report(&self) -> &AdapterReport {
        &self.report
    }

    /// Whether kernels may use f16 (`enable f16;`).
    pub fn has_shader_f16(&self) -> bool {
        self.device.features().contains(wgpu::Features::SHADER_F16)
    }

    /// Whether the device can create a [`wgpu::PipelineCache`] (Vulkan adapters; not
    /// Metal, DX12, GL or browsers), which [`crate::KernelRunner`] persists on disk.
    pub fn has_pipeline_cache(&self) -> bool {
        self.device.features().contains(wgpu::Features::PIPELINE_CACHE)
    }

    /// The adapter's full info (vendor/device ids, driver), e.g. for cache keys.
    pub fn adapter_info(&self) -> wgpu::AdapterInfo {
        self.adapter.get_info()
    }

    /// The device's limits.
    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }
}

fn not_found(selector: &AdapterSelector, adapters: &[wgpu::Adapter]) -> GpuError {
    let available = adapters
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let info = a.get_info();
            format!("{i}: {} ({})", info.name, info.backend.to_str())
        })
        .collect::<Vec<_>>()
        .join(", ");
    let selector = match selector {
        AdapterSelector::Index(i) => i.to_string(),
        AdapterSelector::Name(n) => n.clone(),
        AdapterSelector::HighPerformance => "high-performance".into(),
        AdapterSelector::LowPower => "low-power".into(),
    };
    GpuError::AdapterNotFound { selector, available }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_parses_index_name_and_preferences() {
        assert_eq!(AdapterSelector::parse("1"), AdapterSelector::Index(1));
        assert_eq!(AdapterSelector::parse(" llvmpipe "), AdapterSelector::Name("llvmpipe".into()));
        assert_eq!(AdapterSelector::parse(""), AdapterSelector::HighPerformance);
        assert_eq!(AdapterSelector::parse("low-power"), AdapterSelector::LowPower);
    }

    #[test]
    fn feature_names_use_webgpu_spelling() {
        let names = feature_names(wgpu::Features::SHADER_F16 | wgpu::Features::TIMESTAMP_QUERY);
        assert!(names.contains(&"shader-f16".to_string()), "{names:?}");
        assert!(names.contains(&"timestamp-query".to_string()), "{names:?}");
    }
}

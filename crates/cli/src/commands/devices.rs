//! `ipfs-accelerate devices`: the backends available on this machine.
//!
//! The CPU, then every GPU adapter wgpu can see (index, backend, device type,
//! driver, `shader-f16`, key limits), marking the one `--backend webgpu` would
//! open. Listing opens no device: adapters are enumerated, and the default
//! selection asks wgpu for its high-performance adapter, which is what
//! [`GpuContext::new`] does before it opens one.

use anyhow::Result;
use clap::Args;
use ipfs_accelerate_gpu::{wgpu, AdapterReport, AdapterSelector, GpuContext, ADAPTER_ENV};
use serde::Serialize;

/// List the backends available here and what they can do.
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate devices
  ipfs-accelerate devices --json
  IPFS_ACCELERATE_ADAPTER=llvmpipe ipfs-accelerate devices   # which adapter webgpu would pick

GPU adapters come from wgpu (Vulkan, Metal, DX12, GL). None found? Install your GPU's
driver with Vulkan support, or Mesa's software Vulkan (Debian/Ubuntu:
apt install mesa-vulkan-drivers libvulkan1) to run --backend webgpu, slowly, on the CPU.")]
pub struct DevicesArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Device {
    backend: &'static str,
    available: bool,
    name: String,
    arch: &'static str,
    features: Vec<&'static str>,
    threads: usize,
    memory_mib: Option<u64>,
}

/// A GPU adapter as `devices --json` shows it.
#[derive(Serialize)]
struct GpuAdapter {
    #[serde(flatten)]
    report: AdapterReport,
    /// Whether `--backend webgpu` would open this adapter.
    selected: bool,
}

/// Which adapter `--backend webgpu` would open, and why.
#[derive(Serialize)]
struct WebgpuSelection {
    /// Index into `gpu_adapters`, or null when none would be opened.
    adapter: Option<usize>,
    /// How it is chosen: `high-performance` (default) or the value of IPFS_ACCELERATE_ADAPTER.
    selector: String,
    /// Why no adapter would be opened, when none would.
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<String>,
}

/// What to do when no adapter is found.
const NO_ADAPTER_HINT: &str = "install your GPU's driver with Vulkan support, or Mesa's software Vulkan \
     (Debian/Ubuntu: apt install mesa-vulkan-drivers libvulkan1) to run --backend webgpu slowly on the CPU";

pub fn run(args: DevicesArgs) -> Result<()> {
    let cpu = Device {
        backend: "cpu",
        available: true,
        name: cpu_name(),
        arch: std::env::consts::ARCH,
        features: cpu_features(),
        threads: rayon::current_num_threads(),
        memory_mib: memory_mib(),
    };
    let devices = vec![cpu];
    let reports = GpuContext::adapters();
    let selection = webgpu_selection(&reports);
    let adapters: Vec<GpuAdapter> = reports
        .into_iter()
        .map(|report| GpuAdapter { selected: Some(report.index) == selection.adapter, report })
        .collect();
    if args.json {
        println!("{}", serde_json::json!({ "devices": devices, "gpu_adapters": adapters, "webgpu": selection }));
        return Ok(());
    }
    for d in &devices {
        println!("{} ({})", d.backend, if d.available { "available" } else { "unavailable" });
        println!("  name:     {}", d.name);
        println!("  arch:     {}", d.arch);
        println!("  features: {}", if d.features.is_empty() { "-".into() } else { d.features.join(" ") });
        println!("  threads:  {}", d.threads);
        if let Some(m) = d.memory_mib {
            println!("  memory:   {m} MiB");
        }
    }
    println!();
    print_adapters(&adapters, &selection);
    Ok(())
}

fn print_adapters(adapters: &[GpuAdapter], selection: &WebgpuSelection) {
    if adapters.is_empty() {
        let forced = std::env::var("WGPU_BACKEND").map(|b| format!(" (WGPU_BACKEND={b})")).unwrap_or_default();
        println!("webgpu (unavailable): no GPU adapter found{forced}");
        println!("  to get one: {NO_ADAPTER_HINT}");
        return;
    }
    let count = if adapters.len() == 1 { "1 adapter".to_string() } else { format!("{} adapters", adapters.len()) };
    match (selection.adapter, &selection.problem) {
        (Some(i), _) => {
            println!("webgpu (available, {count}; --backend webgpu uses [{i}], selector {})", selection.selector)
        }
        (None, Some(problem)) => println!("webgpu ({count}; --backend webgpu would fail: {problem})"),
        (None, None) => println!("webgpu ({count})"),
    }
    for a in adapters {
        let r = &a.report;
        let mark = if a.selected { "   <- --backend webgpu" } else { "" };
        println!("  [{}] {}{mark}", r.index, r.name);
        println!("      backend:      {}", r.backend);
        let software = if r.device_type == "Cpu" { " (software rendering, slow)" } else { "" };
        println!("      device type:  {}{software}", r.device_type);
        let driver = match (r.driver.is_empty(), r.driver_info.is_empty()) {
            (true, true) => "-".to_string(),
            (false, true) => r.driver.clone(),
            (true, false) => r.driver_info.clone(),
            (false, false) => format!("{} ({})", r.driver, r.driver_info),
        };
        println!("      driver:       {driver}");
        println!("      vendor/device: {:#06x}/{:#06x}", r.vendor_id, r.device_id);
        println!("      shader-f16:   {}", if r.shader_f16 { "yes" } else { "no" });
        let l = &r.limits;
        println!(
            "      limits:       storage binding {}, buffer {}, uniform binding {}",
            bytes(l.max_storage_buffer_binding_size),
            bytes(l.max_buffer_size),
            bytes(l.max_uniform_buffer_binding_size)
        );
        println!(
            "                    workgroup {}x{} ({} invocations, {} shared), {} workgroups/dim, \
             {} storage buffers/stage, offset align {}",
            l.max_compute_workgroup_size_x,
            l.max_compute_workgroup_size_y,
            l.max_compute_invocations_per_workgroup,
            bytes(u64::from(l.max_compute_workgroup_storage_size)),
            l.max_compute_workgroups_per_dimension,
            l.max_storage_buffers_per_shader_stage,
            l.min_storage_buffer_offset_alignment
        );
        println!("      features:     {}", if r.features.is_empty() { "-".into() } else { r.features.join(" ") });
    }
}

/// Runs a future to completion on this thread (wgpu's native adapter request
/// is ready at once; this avoids a dependency for one call).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// `2147483648` → `2 GiB`, `32768` → `32 KiB`.
fn bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size && n.is_multiple_of(size) {
            return format!("{} {unit}", n / size);
        }
        if n >= size {
            return format!("{:.1} {unit}", n as f64 / size as f64);
        }
    }
    format!("{n} B")
}

/// Which adapter [`GpuContext::new`] would open, worked out the same way
/// (IPFS_ACCELERATE_ADAPTER, else wgpu's high-performance choice) without
/// opening a device.
fn webgpu_selection(reports: &[AdapterReport]) -> WebgpuSelection {
    let selector = AdapterSelector::from_env();
    let selector_text = match &selector {
        AdapterSelector::HighPerformance => "high-performance".to_string(),
        AdapterSelector::LowPower => format!("{ADAPTER_ENV}=low-power"),
        AdapterSelector::Index(i) => format!("{ADAPTER_ENV}={i}"),
        AdapterSelector::Name(n) => format!("{ADAPTER_ENV}={n}"),
    };
    let none = |problem: Option<String>| WebgpuSelection { adapter: None, selector: selector_text.clone(), problem };
    if reports.is_empty() {
        return none(Some("no GPU adapter found".into()));
    }
    let index = match &selector {
        AdapterSelector::Index(i) => reports.get(*i).map(|r| r.index),
        AdapterSelector::Name(needle) => {
            let needle = needle.to_lowercase();
            reports.iter().find(|r| r.name.to_lowercase().contains(&needle)).map(|r| r.index)
        }
        AdapterSelector::HighPerformance | AdapterSelector::LowPower => {
            let power_preference = if selector == AdapterSelector::LowPower {
                wgpu::PowerPreference::LowPower
            } else {
                wgpu::PowerPreference::HighPerformance
            };
            // The same instance settings as the gpu crate (WGPU_BACKEND honoured).
            let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle().with_env());
            let chosen = block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
                power_preference,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            }));
            match chosen {
                Ok(adapter) => {
                    let info = adapter.get_info();
                    let same = |r: &&AdapterReport| {
                        r.name == info.name
                            && r.backend == info.backend.to_str()
                            && r.vendor_id == info.vendor
                            && r.device_id == info.device
                            && r.driver == info.driver
                            && r.driver_info == info.driver_info
                    };
                    Some(reports.iter().find(same).map_or(0, |r| r.index))
                }
                Err(_) => None,
            }
        }
    };
    match index {
        Some(i) => WebgpuSelection { adapter: Some(i), selector: selector_text, problem: None },
        None => none(Some(format!("{selector_text} matches no adapter"))),
    }
}

/// The CPU's marketing name (Linux `/proc/cpuinfo`), or the architecture.
fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name") || l.starts_with("Model") || l.starts_with("Hardware"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| format!("{} CPU", std::env::consts::ARCH))
}

/// SIMD features the kernels can use, detected at run time.
fn cpu_features() -> Vec<&'static str> {
    #[allow(unused_mut)]
    let mut features = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => { $( if std::is_x86_feature_detected!($f) { features.push($f); } )* };
        }
        probe!("sse4.2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vnni");
    }
    #[cfg(target_arch = "aarch64")]
    {
        macro_rules! probe {
            ($($f:tt),*) => { $( if std::arch::is_aarch64_feature_detected!($f) { features.push($f); } )* };
        }
        probe!("neon", "fp16", "dotprod", "sve");
    }
    features
}

/// Total memory in MiB (Linux `/proc/meminfo`).
fn memory_mib() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

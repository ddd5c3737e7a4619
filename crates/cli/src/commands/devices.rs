//! `ipfs-accelerate devices`: the backends available on this machine.

use anyhow::Result;
use clap::Args;
use serde::Serialize;

/// List the backends available here and what they can do.
#[derive(Args)]
#[command(after_help = "Examples:
  ipfs-accelerate devices
  ipfs-accelerate devices --json")]
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
    if args.json {
        println!("{}", serde_json::json!({ "devices": devices }));
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
    Ok(())
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

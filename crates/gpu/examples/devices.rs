//! Prints every adapter wgpu sees, and the one `GpuContext::new` would open, as JSON.
//!
//! `cargo run -p ipfs-accelerate-gpu --release --example devices`

fn main() {
    let adapters = ipfs_accelerate_gpu::GpuContext::adapters();
    println!("{}", serde_json::to_string_pretty(&adapters).expect("serializable"));
    match ipfs_accelerate_gpu::GpuContext::new() {
        Ok(ctx) => eprintln!("selected: {} ({})", ctx.report().name, ctx.report().backend),
        Err(e) => eprintln!("no device: {e}"),
    }
}

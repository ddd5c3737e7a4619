//! The GPU shared by a test binary's tests, and the `gpu!()` guard.

use ipfs_accelerate_gpu::{GpuContext, KernelRunner};
use std::sync::OnceLock;

/// One device for the whole test binary (creating one on lavapipe is slow).
/// `None` (tests skip with a notice) without an adapter — except under
/// `CI=true`, where CI installs Mesa's software Vulkan, so it panics.
pub fn runner() -> Option<&'static KernelRunner> {
    static RUNNER: OnceLock<Option<KernelRunner>> = OnceLock::new();
    RUNNER
        .get_or_init(|| match GpuContext::new() {
            Ok(ctx) => {
                let r = ctx.report();
                eprintln!("GPU tests on {} ({}, {}, {})", r.name, r.backend, r.device_type, r.driver_info);
                Some(KernelRunner::new(&ctx))
            }
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true and no GPU adapter, so the GPU tests cannot run: {e}")
            }
            Err(e) => {
                eprintln!("SKIPPED: no GPU adapter: {e}");
                None
            }
        })
        .as_ref()
}

/// The shared runner, or `return` from the test (skipped) without one.
#[macro_export]
macro_rules! gpu {
    () => {
        match support::runner() {
            Some(r) => r,
            None => return,
        }
    };
}

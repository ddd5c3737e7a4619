//! The crate's error type.

/// Everything that can go wrong on the GPU path. Each message says what happened and,
/// where there is one, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No adapter at all: no GPU driver, or no Vulkan/Metal/DX12 loader.
    #[error(
        "no GPU adapter found{detail}: install a Vulkan driver (for a software adapter on \
         Debian/Ubuntu: `apt-get install mesa-vulkan-drivers libvulkan1`), or use the CPU backend"
    )]
    NoAdapter {
        /// Extra context, e.g. `" (WGPU_BACKEND=gl)"`; may be empty.
        detail: String,
    },
    /// `IPFS_ACCELERATE_ADAPTER` (or an explicit selector) matched no adapter.
    #[error("no GPU adapter matches {selector:?}; available: {available}")]
    AdapterNotFound {
        /// The selector as given.
        selector: String,
        /// `index: name (backend)` for every adapter, comma separated.
        available: String,
    },
    /// The adapter refused to create a device.
    #[error("could not open GPU device on adapter {adapter:?}: {message}")]
    RequestDevice {
        /// Adapter name.
        adapter: String,
        /// wgpu's message.
        message: String,
    },
    /// A kernel id that the registry does not know.
    #[error("unknown GPU kernel {0:?}")]
    UnknownKernel(String),
    /// A kernel failed to compile (or its pipeline failed validation) on this driver.
    #[error("GPU kernel {kernel:?} failed to compile on this adapter: {message}")]
    ShaderCompile {
        /// Kernel id.
        kernel: String,
        /// The compiler's / validator's message.
        message: String,
    },
    /// wgpu rejected a command (wrong binding sizes, limits exceeded, …).
    #[error("GPU validation error in {context}: {message}")]
    Validation {
        /// What was being done (kernel id, "readback", …).
        context: String,
        /// wgpu's message.
        message: String,
    },
    /// The device ran out of memory.
    #[error("GPU out of memory in {context}")]
    OutOfMemory {
        /// What was being done.
        context: String,
    },
    /// A buffer is larger than the device allows.
    #[error("GPU buffer of {bytes} bytes exceeds this device's limit of {limit} bytes ({which})")]
    BufferTooLarge {
        /// Requested size.
        bytes: u64,
        /// The limit.
        limit: u64,
        /// Which limit (`max_buffer_size`, `max_storage_buffer_binding_size`, …).
        which: &'static str,
    },
    /// The arguments of a launch do not fit the kernel's binding layout.
    #[error("bad launch of GPU kernel {kernel:?}: {message}")]
    BadLaunch {
        /// Kernel id.
        kernel: String,
        /// What is wrong.
        message: String,
    },
    /// The graph uses an op, dtype or attribute the kernel library does not
    /// cover (yet); the CPU backend runs it.
    #[error("the webgpu backend cannot run {op}: {message} (use --backend cpu)")]
    Unsupported {
        /// The op's WebNN name.
        op: String,
        /// What exactly is not covered.
        message: String,
    },
    /// The graph is malformed (it failed validation).
    #[error("invalid graph: {0}")]
    Graph(String),
    /// A plan that cannot run here: another format version, a missing
    /// weight or input, or a buffer it names that does not exist.
    #[error("cannot run the plan: {0}")]
    Plan(String),
    /// Waiting for the GPU failed, timed out, or the device was lost.
    #[error("GPU {context} failed: {message}")]
    Device {
        /// What was being waited for.
        context: String,
        /// wgpu's message.
        message: String,
    },
}

/// `Result` with [`GpuError`].
pub type Result<T, E = GpuError> = std::result::Result<T, E>;

impl GpuError {
    /// Maps a wgpu error captured by an error scope.
    pub(crate) fn from_wgpu(context: impl Into<String>, error: wgpu::Error) -> Self {
        let context = context.into();
        match error {
            wgpu::Error::OutOfMemory { .. } => GpuError::OutOfMemory { context },
            other => GpuError::Validation { context, message: with_sources(&other) },
        }
    }
}

/// One line, `error: cause: cause…`. wgpu's description is multi-line
/// ("Validation Error\n\nCaused by:\n  In a CommandEncoder\n    …"); its source chain
/// is appended where the description lacks it.
pub(crate) fn with_sources(error: &dyn std::error::Error) -> String {
    let mut message = one_line(&error.to_string());
    let mut source = error.source();
    while let Some(e) = source {
        let text = one_line(&e.to_string());
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = e.source();
    }
    message
}

fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && *l != "Caused by:").collect::<Vec<_>>().join(": ")
}

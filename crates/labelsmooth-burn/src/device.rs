//! Where models train: Burn's CPU backend (flex, always built) or a GPU through Burn's CubeCL
//! backends, each behind a cargo feature that is off by default.
//!
//! | backend | cargo feature | built here | fused CPU layers | runs bit for bit again |
//! |---|---|---|---|---|
//! | `cpu` | none | always | yes | yes, with the same seed and threads |
//! | `wgpu` (Vulkan, Metal, DX12; lavapipe on the CPU) | `wgpu` | yes, offline | no: Burn's operations, and the smoothed cross-entropy kernel ([`crate::fused::cube`]) | same adapter and driver: yes for the loss kernel, not promised for reductions inside Burn's kernels |
//! | `cuda` | none | no: Burn's `cuda` feature downloads LLVM while it builds | no | not offered |
//!
//! On a GPU the models run through Burn's operations and the smoothed cross-entropy through its
//! own CubeCL kernel; the fused CPU layers ([`crate::fused`]) are used only on the CPU. Random weights drawn
//! on another device differ from the CPU's for the same seed: to compare devices, initialize on
//! the CPU and move the model ([`crate::models::Classifier::to_device`]).

use std::fmt;
use std::str::FromStr;

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// A device to train on, by backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Burn's pure-Rust CPU backend (flex), with the fused CPU layers.
    #[default]
    Cpu,
    /// wgpu: the first GPU adapter wgpu finds (Vulkan, Metal, DX12), else a CPU one such as
    /// Mesa's lavapipe.
    Wgpu,
    /// CUDA.
    Cuda,
}

/// Why a device could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceError {
    /// This build has no such backend.
    NotBuilt {
        /// The backend asked for.
        backend: Backend,
        /// What it takes to get it.
        how: &'static str,
    },
    /// The backend is built but found no adapter to run on.
    NoAdapter {
        /// The backend asked for.
        backend: Backend,
        /// The backend's own message.
        message: String,
    },
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::NotBuilt { backend, how } => {
                write!(
                    f,
                    "this labelsmooth was built without the {backend} backend: {how}"
                )
            }
            DeviceError::NoAdapter { backend, message } => write!(
                f,
                "the {backend} backend found no device to run on ({message}); on a machine without a GPU, install Mesa's Vulkan drivers (Debian: mesa-vulkan-drivers) to run on the CPU through lavapipe"
            ),
        }
    }
}

impl std::error::Error for DeviceError {}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Cpu => "cpu",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
        })
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" | "flex" => Ok(Backend::Cpu),
            "wgpu" | "gpu" => Ok(Backend::Wgpu),
            "cuda" => Ok(Backend::Cuda),
            other => Err(format!("device `{other}` is not one of cpu, wgpu, cuda")),
        }
    }
}

impl Backend {
    /// Whether this is the CPU backend.
    pub fn is_cpu(&self) -> bool {
        *self == Backend::Cpu
    }

    /// Whether this build has the backend.
    pub fn is_built(&self) -> bool {
        match self {
            Backend::Cpu => true,
            Backend::Wgpu => cfg!(feature = "wgpu"),
            Backend::Cuda => false,
        }
    }

    /// The backends this build has.
    pub fn built() -> Vec<Backend> {
        [Backend::Cpu, Backend::Wgpu, Backend::Cuda]
            .into_iter()
            .filter(Backend::is_built)
            .collect()
    }

    /// Opens the device: for wgpu, initializes its runtime on the first adapter it finds (a
    /// GPU before a CPU adapter) once per process.
    pub fn open(&self) -> Result<Device, DeviceError> {
        match self {
            Backend::Cpu => Ok(Device::flex()),
            Backend::Wgpu => open_wgpu(),
            Backend::Cuda => Err(DeviceError::NotBuilt {
                backend: Backend::Cuda,
                how: "Burn's cuda backend downloads LLVM while it builds, so no build of labelsmooth offers it; use --device wgpu, which runs on NVIDIA cards through Vulkan",
            }),
        }
    }
}

/// The name the device gives itself (`NVIDIA H200`, `llvmpipe (LLVM 19.1.7, 256 bits)`), for a
/// GPU backend; `None` on the CPU.
pub fn adapter_name(device: &Device) -> Option<String> {
    #[cfg(feature = "wgpu")]
    if !crate::loss::is_cpu(device) {
        return device.identity().map(|id| id.name);
    }
    let _ = device;
    None
}

/// The device's copy bandwidth in GB/s (bytes read plus bytes written per second), measured by
/// CubeCL's memory probe: the ceiling for a kernel that reads its input once and writes its
/// output once. `None` on the CPU or where the probe has no figure.
pub fn copy_gbps(device: &Device) -> Option<f64> {
    #[cfg(feature = "wgpu")]
    if !crate::loss::is_cpu(device) {
        use burn::tensor::{MemoryAccess, ThroughputKey, ThroughputMode};
        let key = ThroughputKey {
            mode: ThroughputMode::memory(MemoryAccess::Copy),
        };
        let stat = device.performance_stats(&[key]).into_iter().next()?;
        return stat.value.ok().map(|v| v.bytes_per_s(&key) / 1e9);
    }
    let _ = device;
    None
}

/// The bytes the device's memory pools hold (GPU backends; `None` on the CPU), after
/// releasing what they can: a call's growth of it is the device memory that call needed.
pub fn reserved_bytes(device: &Device) -> Option<u64> {
    if crate::loss::is_cpu(device) {
        return None;
    }
    device.memory_cleanup();
    device.memory_pool_usage().map(|u| u.bytes_reserved)
}

#[cfg(feature = "wgpu")]
fn open_wgpu() -> Result<Device, DeviceError> {
    static DEVICE: std::sync::OnceLock<Result<Device, DeviceError>> = std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| {
            Device::wgpu_options()
                .init()
                .map_err(|e| DeviceError::NoAdapter {
                    backend: Backend::Wgpu,
                    message: e.to_string(),
                })
        })
        .clone()
}

#[cfg(not(feature = "wgpu"))]
fn open_wgpu() -> Result<Device, DeviceError> {
    Err(DeviceError::NotBuilt {
        backend: Backend::Wgpu,
        how: "build it with `cargo build --release -p labelsmooth-cli --features wgpu`",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for b in [Backend::Cpu, Backend::Wgpu, Backend::Cuda] {
            assert_eq!(b.to_string().parse::<Backend>(), Ok(b));
        }
        assert_eq!(" GPU ".parse::<Backend>(), Ok(Backend::Wgpu));
        assert_eq!(
            "tpu".parse::<Backend>(),
            Err("device `tpu` is not one of cpu, wgpu, cuda".into())
        );
    }

    #[test]
    fn the_cpu_always_opens_and_cuda_never_does() {
        assert_eq!(Backend::Cpu.open(), Ok(Device::flex()));
        let e = Backend::Cuda.open().unwrap_err();
        assert!(matches!(e, DeviceError::NotBuilt { .. }));
        assert!(e.to_string().contains("without the cuda backend"), "{e}");
        assert!(Backend::built().contains(&Backend::Cpu));
    }

    #[cfg(not(feature = "wgpu"))]
    #[test]
    fn wgpu_without_its_feature_says_how_to_build_it() {
        let e = Backend::Wgpu.open().unwrap_err();
        assert!(e.to_string().contains("--features wgpu"), "{e}");
        assert!(!Backend::Wgpu.is_built());
    }
}

//! Run-time backend choice: the same model code on CPU (`flex`), wgpu (Vulkan/Metal/DX12/WebGPU) or CUDA.

use burn::tensor::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Pure-Rust CPU backend.
    Flex,
    /// wgpu on the best adapter the system offers (falls back to a software adapter).
    Wgpu,
    /// wgpu pinned to a CPU (software) adapter such as Mesa's lavapipe: correctness checks without a GPU.
    WgpuCpu,
    Cuda,
}

impl BackendKind {
    pub const ALL: [&'static str; 4] = ["flex", "wgpu", "wgpu-cpu", "cuda"];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Wgpu => "wgpu",
            BackendKind::WgpuCpu => "wgpu-cpu",
            BackendKind::Cuda => "cuda",
        }
    }

    /// Whether this build includes the backend.
    pub fn compiled(self) -> bool {
        match self {
            BackendKind::Flex => cfg!(feature = "flex"),
            BackendKind::Wgpu | BackendKind::WgpuCpu => cfg!(feature = "wgpu"),
            BackendKind::Cuda => cfg!(feature = "cuda"),
        }
    }

    /// The device without autodiff (inference); call `.autodiff()` for training.
    pub fn device(self) -> Result<Device, String> {
        if !self.compiled() {
            return Err(format!(
                "backend `{}` is not compiled into this build; rebuild with `--features {}`",
                self.name(),
                match self {
                    BackendKind::WgpuCpu => "wgpu",
                    other => other.name(),
                }
            ));
        }
        Ok(self.make())
    }

    #[allow(unreachable_code)]
    fn make(self) -> Device {
        match self {
            #[cfg(feature = "flex")]
            BackendKind::Flex => Device::flex(),
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => Device::wgpu(burn::tensor::DeviceKind::DefaultDevice),
            #[cfg(feature = "wgpu")]
            BackendKind::WgpuCpu => Device::wgpu(burn::tensor::DeviceKind::Cpu),
            #[cfg(feature = "cuda")]
            BackendKind::Cuda => Device::cuda(0),
            _ => unreachable!("checked by compiled()"),
        }
    }
}

/// Initialises wgpu on the best adapter, asynchronously: the only way in a browser (WebGPU), where the
/// synchronous path cannot block on the adapter request.
#[cfg(feature = "wgpu")]
pub async fn wgpu_device_async() -> Result<Device, String> {
    Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| format!("{e}"))
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "flex" | "cpu" => Ok(BackendKind::Flex),
            "wgpu" => Ok(BackendKind::Wgpu),
            "wgpu-cpu" | "lavapipe" => Ok(BackendKind::WgpuCpu),
            "cuda" => Ok(BackendKind::Cuda),
            _ => Err(format!(
                "unknown backend {s:?} (expected one of {})",
                Self::ALL.join(", ")
            )),
        }
    }
}

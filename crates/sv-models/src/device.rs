//! Devices by name, as `--device` takes them: `cpu` (burn's Flex backend), `cuda[:N]`,
//! `vulkan[:N]` and `wgpu`, each GPU backend behind its cargo feature.

use burn::tensor::Device;

use crate::error::{ModelError, Result};

/// Whether the backend of `device` implements this crate's backend extensions
/// (`qkv_attention`, `exact_gelu`, `convnext::depthwise`): Flex and the cubecl GPU
/// backends, under autodiff only with the `train` feature (their backward passes).
pub(crate) fn runs_extensions(device: &Device) -> bool {
    if device.is_autodiff() && cfg!(not(feature = "train")) {
        return false;
    }
    match device.clone().inner().as_dispatch() {
        burn::backend::DispatchDevice::Flex(_) => true,
        #[cfg(feature = "gpu")]
        burn::backend::DispatchDevice::Cube(_) => true,
        #[allow(unreachable_patterns)]
        _ => false,
    }
}

/// The names `--device` accepts.
pub const DEVICE_NAMES: &str = "cpu, cuda[:N], vulkan[:N] or wgpu";

/// The device named by `name`: `cpu` is burn's Flex backend; `cuda`/`cuda:N` need the
/// `cuda` feature, `vulkan`/`vulkan:N` (the N-th discrete GPU) the `vulkan` feature and
/// `wgpu` (the platform's best GPU and API) the `wgpu` feature. A GPU device is tried
/// at once, so a machine without one gets an error here rather than a panic later; its
/// kernel and autotune caches live in [`gpu_cache_dir`].
pub fn device_by_name(name: &str) -> Result<Device> {
    let name = name.trim().to_ascii_lowercase();
    if name == "cpu" {
        return Ok(Device::flex());
    }
    let (backend, index) = match name.split_once(':') {
        Some((backend, index)) => {
            let index: usize = index.parse().map_err(|_| {
                ModelError::Config(format!("bad device index in `{name}` ({DEVICE_NAMES})"))
            })?;
            (backend, Some(index))
        }
        None => (name.as_str(), None),
    };
    let device = match backend {
        "cuda" => gpu::cuda(index.unwrap_or(0))?,
        "vulkan" => gpu::vulkan(index)?,
        "wgpu" if index.is_none() => gpu::wgpu()?,
        _ => {
            return Err(ModelError::Config(format!(
                "unknown device `{name}` (expected {DEVICE_NAMES})"
            )));
        }
    };
    gpu::check(&name, &device)?;
    Ok(device)
}

/// [`device_by_name`], refused where it cannot compute in `precision`
/// ([`crate::precision::ensure_computes`]).
pub fn device_computing_in(name: &str, precision: crate::Precision) -> Result<Device> {
    let device = device_by_name(name)?;
    crate::precision::ensure_computes(precision, &device)?;
    Ok(device)
}

/// Where GPU backends keep compiled kernels and autotune results between runs, so the
/// first-step warm-up is paid once per machine: `$SV_GPU_CACHE`, else
/// `$XDG_CACHE_HOME/streetvision-rs/gpu`, else `~/.cache/streetvision-rs/gpu`.
pub fn gpu_cache_dir() -> std::path::PathBuf {
    match std::env::var_os("SV_GPU_CACHE").filter(|d| !d.is_empty()) {
        Some(dir) => dir.into(),
        None => sv_fs::cache_dir("gpu"),
    }
}

#[cfg(any(feature = "cuda", feature = "vulkan", feature = "wgpu"))]
mod gpu {
    use super::*;

    /// Point the backends' persistent caches at [`gpu_cache_dir`] (once).
    fn use_cache_dir() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let dir = gpu_cache_dir();
            if std::fs::create_dir_all(&dir).is_ok() {
                burn::cubecl::environment::set_root(dir);
            }
        });
    }

    /// Run one small operation on `device`; a backend that panics (no GPU, no driver,
    /// no Vulkan loader) becomes an error naming the device.
    pub(super) fn check(name: &str, device: &Device) -> Result<()> {
        if matches!(name, "cpu") {
            return Ok(());
        }
        use_cache_dir();
        let device = device.clone();
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let tried = std::panic::catch_unwind(move || {
            let t = burn::tensor::Tensor::<1>::from_floats([1.0, 2.0], &device);
            t.sum().into_scalar::<f32>()
        });
        std::panic::set_hook(hook);
        match tried {
            Ok(sum) if (sum - 3.0).abs() < 1e-6 => Ok(()),
            Ok(sum) => Err(ModelError::Config(format!(
                "device `{name}` computed 1 + 2 = {sum}"
            ))),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("the backend failed to start");
                Err(ModelError::Config(format!(
                    "device `{name}` is not usable here: {}",
                    why.lines().next().unwrap_or(why)
                )))
            }
        }
    }

    #[cfg(feature = "cuda")]
    pub(super) fn cuda(index: usize) -> Result<Device> {
        Ok(Device::cuda(index))
    }

    #[cfg(feature = "vulkan")]
    pub(super) fn vulkan(index: Option<usize>) -> Result<Device> {
        use burn::tensor::DeviceKind;
        Ok(Device::vulkan(match index {
            Some(i) => DeviceKind::DiscreteGpu(i),
            None => DeviceKind::DefaultDevice,
        }))
    }

    #[cfg(feature = "wgpu")]
    pub(super) fn wgpu() -> Result<Device> {
        Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
    }

    #[cfg(not(feature = "cuda"))]
    pub(super) fn cuda(_index: usize) -> Result<Device> {
        Err(super::missing("cuda"))
    }

    #[cfg(not(feature = "vulkan"))]
    pub(super) fn vulkan(_index: Option<usize>) -> Result<Device> {
        Err(super::missing("vulkan"))
    }

    #[cfg(not(feature = "wgpu"))]
    pub(super) fn wgpu() -> Result<Device> {
        Err(super::missing("wgpu"))
    }
}

#[cfg(not(any(feature = "cuda", feature = "vulkan", feature = "wgpu")))]
mod gpu {
    use super::*;

    pub(super) fn check(_name: &str, _device: &Device) -> Result<()> {
        Ok(())
    }

    pub(super) fn cuda(_index: usize) -> Result<Device> {
        Err(super::missing("cuda"))
    }

    pub(super) fn vulkan(_index: Option<usize>) -> Result<Device> {
        Err(super::missing("vulkan"))
    }

    pub(super) fn wgpu() -> Result<Device> {
        Err(super::missing("wgpu"))
    }
}

/// The error for a backend this build does not have.
#[cfg_attr(
    all(feature = "cuda", feature = "vulkan", feature = "wgpu"),
    allow(dead_code)
)]
fn missing(feature: &str) -> ModelError {
    let note = match feature {
        "cuda" => " on a host that reaches the internet (its build downloads LLVM)",
        _ => "",
    };
    ModelError::Config(format!(
        "this build has no {feature} support; rebuild with `--features {feature}`{note}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_parsed_and_mistakes_named() {
        assert!(device_by_name(" CPU ").is_ok());
        for bad in ["gpu", "cuda:x", "vulkan:-1", "wgpu:1", "tpu:0"] {
            let e = device_by_name(bad).unwrap_err().to_string();
            assert!(e.contains(DEVICE_NAMES), "{bad}: {e}");
        }
        #[cfg(not(feature = "vulkan"))]
        {
            let e = device_by_name("vulkan:0").unwrap_err().to_string();
            assert!(e.contains("--features vulkan"), "{e}");
        }
        #[cfg(not(feature = "cuda"))]
        {
            let e = device_by_name("cuda").unwrap_err().to_string();
            assert!(e.contains("--features cuda"), "{e}");
        }
    }

    #[test]
    fn the_gpu_cache_follows_the_environment() {
        // Only reads the environment; set variables are not changed here.
        let dir = gpu_cache_dir();
        assert!(dir.ends_with("gpu") || std::env::var_os("SV_GPU_CACHE").is_some());
    }
}

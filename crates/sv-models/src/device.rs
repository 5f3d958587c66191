//! Choosing the compute device by name (`cpu`, `cuda`, `cuda:N`).

use burn::tensor::Device;

use crate::error::{ModelError, Result};

/// The device named by `name`: `cpu` is burn's Flex backend; `cuda` / `cuda:N` need the
/// `cuda` feature.
pub fn device_by_name(name: &str) -> Result<Device> {
    let name = name.trim().to_ascii_lowercase();
    if name == "cpu" {
        return Ok(Device::flex());
    }
    if let Some(index) = name.strip_prefix("cuda") {
        let index: usize = match index.strip_prefix(':') {
            None if index.is_empty() => 0,
            Some(i) => i
                .parse()
                .map_err(|_| ModelError::Config(format!("bad CUDA device index in `{name}`")))?,
            None => return Err(ModelError::Config(format!("unknown device `{name}`"))),
        };
        return cuda(index);
    }
    Err(ModelError::Config(format!(
        "unknown device `{name}` (expected cpu, cuda or cuda:N)"
    )))
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(_index: usize) -> Result<Device> {
    Err(ModelError::Config(
        "this build has no CUDA support; rebuild with `--features cuda` on a GPU host".into(),
    ))
}

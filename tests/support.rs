//! Helpers shared by the cross-crate tests: fixture paths and reference tensors.

use std::collections::HashMap;
use std::path::PathBuf;

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::SafeTensors;

/// Path of a file under `tests/fixtures`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// A reference tensor: shape and f32 values.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Shape as stored.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub data: Vec<f32>,
}

impl Expected {
    /// As a burn tensor of rank `D` on `device`.
    pub fn tensor<const D: usize>(&self, device: &Device) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }
}

/// Every f32 tensor of a safetensors file written by the fixture script.
pub fn read_expected(rel: &str) -> HashMap<String, Expected> {
    let path = fixture(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            assert_eq!(view.dtype(), safetensors::Dtype::F32, "{name} is not f32");
            let data = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (
                name,
                Expected {
                    shape: view.shape().to_vec(),
                    data,
                },
            )
        })
        .collect()
}

/// Largest absolute difference between a tensor and a reference, after checking shapes.
pub fn max_abs_diff<const D: usize>(what: &str, got: Tensor<D>, want: &Expected) -> f32 {
    let shape = got.dims().to_vec();
    assert_eq!(
        shape, want.shape,
        "{what}: shape differs from the reference"
    );
    let got = got.into_data().try_to_vec::<f32>().expect("f32 tensor");
    got.iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

//! Reading checkpoints (safetensors, PyTorch `.bin`/`.pth`) into named f32 tensors, and
//! taking them out one by one so that a load can report every missing and unused key;
//! and the other way, a module's parameters by path and f32 tensors to safetensors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor, TensorData};
use safetensors::tensor::{Dtype, TensorView};

use crate::error::{ModelError, Result};

/// One tensor of a checkpoint, converted to f32, row-major.
#[derive(Debug, Clone)]
pub struct RawTensor {
    /// Extents, outermost first.
    pub shape: Vec<usize>,
    /// Values in row-major order.
    pub data: Vec<f32>,
}

impl RawTensor {
    /// A tensor from its shape and values.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Self { shape, data }
    }

    /// The transpose of a 2-D tensor (PyTorch `[out, in]` to burn `[in, out]`).
    pub fn transposed(&self) -> RawTensor {
        let (r, c) = (self.shape[0], self.shape[1]);
        let mut out = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                out[j * r + i] = self.data[i * c + j];
            }
        }
        RawTensor::new(vec![c, r], out)
    }

    /// Concatenate tensors along their first axis.
    pub fn cat0(parts: &[RawTensor]) -> RawTensor {
        let mut shape = parts[0].shape.clone();
        shape[0] = parts.iter().map(|p| p.shape[0]).sum();
        let data = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
        RawTensor::new(shape, data)
    }

    /// Convert to a burn tensor of rank `D` on `device`.
    pub fn to_tensor<const D: usize>(&self, device: &Device) -> Tensor<D> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            device,
        )
    }

    /// Convert to a burn parameter of rank `D` on `device`.
    pub fn to_param<const D: usize>(&self, device: &Device) -> Param<Tensor<D>> {
        Param::from_tensor(self.to_tensor(device))
    }
}

/// All tensors of one checkpoint by name.
#[derive(Debug, Clone)]
pub struct WeightMap {
    /// The file the tensors came from (for error messages).
    pub path: PathBuf,
    /// Tensors by their key in the file.
    pub tensors: BTreeMap<String, RawTensor>,
}

impl WeightMap {
    /// Read a checkpoint, choosing the reader from the file's first bytes: a safetensors
    /// header (little-endian length, then `{`) is read as safetensors, a ZIP or pickle as a
    /// PyTorch checkpoint, anything else as safetensors (whose reader then names the fault).
    pub fn from_file(path: &Path) -> Result<Self> {
        let head = read_head(path)?;
        let is_safetensors = head.len() > 8 && head[8] == b'{';
        let is_zip = head.starts_with(b"PK\x03\x04");
        let is_pickle = head.first() == Some(&0x80) && head.get(1).is_some_and(|&p| p <= 5);
        if !is_safetensors && (is_zip || is_pickle) {
            Self::from_pytorch(path)
        } else {
            Self::from_safetensors(path)
        }
    }

    /// Read a safetensors file (F32, F16, BF16, F64 tensors).
    pub fn from_safetensors(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.into(),
            source,
        })?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Format {
            path: path.into(),
            format: "safetensors",
            reason: e.to_string(),
        })?;
        let mut tensors = BTreeMap::new();
        for (name, view) in st.tensors() {
            let raw = view.data();
            let data = match view.dtype() {
                Dtype::F32 => decode::<4>(raw, f32::from_le_bytes),
                Dtype::F16 => decode::<2>(raw, |b| half::f16::from_le_bytes(b).to_f32()),
                Dtype::BF16 => decode::<2>(raw, |b| half::bf16::from_le_bytes(b).to_f32()),
                Dtype::F64 => decode::<8>(raw, |b| f64::from_le_bytes(b) as f32),
                other => {
                    return Err(ModelError::DType {
                        path: path.into(),
                        key: name,
                        dtype: format!("{other:?}"),
                    });
                }
            };
            tensors.insert(name, RawTensor::new(view.shape().to_vec(), data));
        }
        Ok(Self {
            path: path.into(),
            tensors,
        })
    }

    /// Read a PyTorch checkpoint written by `torch.save` (ZIP or legacy format). Nested
    /// dictionaries appear as dotted keys (`state_dict.blocks.0...`).
    pub fn from_pytorch(path: &Path) -> Result<Self> {
        let reader = pytorch_reader::PytorchReader::new(path).map_err(|e| ModelError::Format {
            path: path.into(),
            format: "PyTorch",
            reason: e.to_string(),
        })?;
        let mut tensors = BTreeMap::new();
        for (name, t) in reader.into_tensors() {
            use pytorch_reader::DType;
            let raw = t.read().map_err(|source| ModelError::Io {
                path: path.into(),
                source,
            })?;
            let data = match t.dtype() {
                DType::F32 => decode::<4>(&raw, f32::from_ne_bytes),
                DType::F16 => decode::<2>(&raw, |b| half::f16::from_ne_bytes(b).to_f32()),
                DType::BF16 => decode::<2>(&raw, |b| half::bf16::from_ne_bytes(b).to_f32()),
                DType::F64 => decode::<8>(&raw, |b| f64::from_ne_bytes(b) as f32),
                other => {
                    return Err(ModelError::DType {
                        path: path.into(),
                        key: name,
                        dtype: format!("{other:?}"),
                    });
                }
            };
            tensors.insert(name, RawTensor::new(t.shape().to_vec(), data));
        }
        Ok(Self {
            path: path.into(),
            tensors,
        })
    }

    /// Remove `prefix` from every key that has it (keys without it are kept as they are).
    pub fn strip_prefix(&mut self, prefix: &str) {
        let old = std::mem::take(&mut self.tensors);
        self.tensors = old
            .into_iter()
            .map(|(k, v)| match k.strip_prefix(prefix) {
                Some(rest) => (rest.to_string(), v),
                None => (k, v),
            })
            .collect();
    }

    /// Remove each wrapper prefix (`state_dict.`, `module.`, …) that every key starts with,
    /// in order, so checkpoints saved from wrapped models load like bare ones.
    pub fn strip_wrappers(&mut self, wrappers: &[&str]) {
        for wrapper in wrappers {
            if !self.tensors.is_empty() && self.tensors.keys().all(|k| k.starts_with(wrapper)) {
                self.strip_prefix(wrapper);
            }
        }
    }

    /// Whether a key is present.
    pub fn contains(&self, key: &str) -> bool {
        self.tensors.contains_key(key)
    }

    /// The shape of a tensor, if present.
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.tensors.get(key).map(|t| t.shape.as_slice())
    }

    /// A few keys, for error messages.
    pub fn sample_keys(&self, n: usize) -> String {
        let keys: Vec<&str> = self.tensors.keys().take(n).map(String::as_str).collect();
        keys.join(", ")
    }
}

fn read_head(path: &Path) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.into(),
        source,
    })?;
    let mut head = Vec::with_capacity(16);
    f.take(16)
        .read_to_end(&mut head)
        .map_err(|source| ModelError::Io {
            path: path.into(),
            source,
        })?;
    Ok(head)
}

fn decode<const N: usize>(raw: &[u8], f: impl Fn([u8; N]) -> f32) -> Vec<f32> {
    raw.chunks_exact(N)
        .map(|c| f(c.try_into().expect("chunk of N bytes")))
        .collect()
}

/// Takes tensors out of a [`WeightMap`] under the names a model asks for, and records
/// every key asked for but absent, and every shape that differs from the model's.
/// [`WeightTaker::finish`] fails listing all problems, including keys never taken.
pub struct WeightTaker {
    map: WeightMap,
    layout: String,
    missing: Vec<String>,
    mismatched: Vec<String>,
}

impl WeightTaker {
    /// Start taking from `map`, whose layout name appears in errors.
    pub fn new(map: WeightMap, layout: impl Into<String>) -> Self {
        Self {
            map,
            layout: layout.into(),
            missing: Vec::new(),
            mismatched: Vec::new(),
        }
    }

    /// Whether `key` is still available.
    pub fn has(&self, key: &str) -> bool {
        self.map.contains(key)
    }

    /// The shape of `key`, if still available.
    pub fn shape(&self, key: &str) -> Option<&[usize]> {
        self.map.shape(key)
    }

    /// Take `key`, which must have `shape`. Records a problem and returns zeros of that
    /// shape when it is absent or differently shaped (the load then fails in `finish`).
    pub fn take(&mut self, key: &str, shape: &[usize]) -> RawTensor {
        match self.map.tensors.remove(key) {
            Some(t) if t.shape == shape => t,
            Some(t)
                if t.shape.iter().product::<usize>() == shape.iter().product::<usize>()
                    && squeeze(&t.shape) == squeeze(shape) =>
            {
                // Same values up to size-1 axes (e.g. GRN `[1,1,1,C]` vs `[C]`).
                RawTensor::new(shape.to_vec(), t.data)
            }
            Some(t) => {
                self.mismatched.push(format!(
                    "{key}: checkpoint {:?}, model {:?}",
                    t.shape, shape
                ));
                zeros(shape)
            }
            None => {
                self.missing.push(key.to_string());
                zeros(shape)
            }
        }
    }

    /// Take `key` if present, with the same shape rule as [`take`](Self::take).
    pub fn take_optional(&mut self, key: &str, shape: &[usize]) -> Option<RawTensor> {
        self.has(key).then(|| self.take(key, shape))
    }

    /// Take a PyTorch linear layer `{prefix}.weight` `[out, in]` (and `{prefix}.bias`),
    /// returning the weight transposed to burn's `[in, out]`.
    pub fn take_linear(
        &mut self,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> (RawTensor, Option<RawTensor>) {
        let w = self
            .take(&format!("{prefix}.weight"), &[d_out, d_in])
            .transposed();
        let b = bias.then(|| self.take(&format!("{prefix}.bias"), &[d_out]));
        (w, b)
    }

    /// Fail if any key was missing, mismatched, or left unused.
    pub fn finish(self) -> Result<()> {
        let unused: Vec<&String> = self.map.tensors.keys().collect();
        if self.missing.is_empty() && self.mismatched.is_empty() && unused.is_empty() {
            return Ok(());
        }
        let mut details = String::new();
        let mut section = |title: &str, items: Vec<String>| {
            if !items.is_empty() {
                details.push_str(&format!("\n  {title} ({}):", items.len()));
                for item in items {
                    details.push_str(&format!("\n    {item}"));
                }
            }
        };
        section("missing keys", self.missing);
        section(
            "unused keys",
            unused.into_iter().map(|k| k.to_string()).collect(),
        );
        section("shape mismatches", self.mismatched);
        Err(ModelError::KeyMismatch {
            path: self.map.path,
            layout: self.layout,
            details,
        })
    }
}

fn squeeze(shape: &[usize]) -> Vec<usize> {
    shape.iter().copied().filter(|&d| d != 1).collect()
}

fn zeros(shape: &[usize]) -> RawTensor {
    RawTensor::new(shape.to_vec(), vec![0.0; shape.iter().product()])
}

/// A parameter's shape and values.
pub type Values = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// A tensor's values as `f32`, flattened (empty if they cannot be read).
pub fn values_of<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .unwrap_or_default()
}

/// Serialise named `f32` tensors (shape, values) to safetensors bytes with `meta`.
pub fn serialize_f32<'a>(
    tensors: impl IntoIterator<Item = (String, &'a [usize], &'a [f32])>,
    meta: std::collections::HashMap<String, String>,
) -> std::result::Result<Vec<u8>, safetensors::SafeTensorError> {
    let owned: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(k, shape, v)| (k, shape.to_vec(), f32_bytes(v)))
        .collect();
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(k, shape, bytes)| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, shape.clone(), bytes).expect("sizes agree"),
            )
        })
        .collect();
    safetensors::serialize(views, Some(meta))
}

/// Every float parameter of `module` by path.
pub fn params_of<M: Module>(module: &M) -> Values {
    flat_params_of(module)
        .into_iter()
        .map(|(path, (shape, t))| (path, (shape, values_of(t))))
        .collect()
}

/// Every float parameter of `module` by path: its shape and its values flattened, as a
/// tensor on the parameter's device, off the autodiff graph.
pub fn flat_params_of<M: Module>(module: &M) -> BTreeMap<String, (Vec<usize>, Tensor<1>)> {
    struct Collect {
        path: Vec<String>,
        out: BTreeMap<String, (Vec<usize>, Tensor<1>)>,
    }
    impl ModuleVisitor for Collect {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let t = p.val().inner();
            let shape = t.dims().to_vec();
            self.out
                .insert(self.path.join("."), (shape, t.flatten(0, D - 1)));
        }
    }
    let mut c = Collect {
        path: Vec::new(),
        out: BTreeMap::new(),
    };
    module.visit(&mut c);
    c.out
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_swaps_axes() {
        let t = RawTensor::new(vec![2, 3], vec![1., 2., 3., 4., 5., 6.]);
        let tt = t.transposed();
        assert_eq!(tt.shape, vec![3, 2]);
        assert_eq!(tt.data, vec![1., 4., 2., 5., 3., 6.]);
    }

    #[test]
    fn taker_reports_missing_unused_and_shape() {
        let mut tensors = BTreeMap::new();
        tensors.insert("a".into(), RawTensor::new(vec![2], vec![1., 2.]));
        tensors.insert("b".into(), RawTensor::new(vec![3], vec![1., 2., 3.]));
        tensors.insert("extra".into(), RawTensor::new(vec![1], vec![0.]));
        let map = WeightMap {
            path: "x.safetensors".into(),
            tensors,
        };
        let mut taker = WeightTaker::new(map, "test");
        assert_eq!(taker.take("a", &[2]).data, vec![1., 2.]);
        taker.take("b", &[4]);
        taker.take("c", &[1]);
        let err = taker.finish().unwrap_err().to_string();
        assert!(err.contains("missing keys (1):\n    c"), "{err}");
        assert!(err.contains("unused keys (1):\n    extra"), "{err}");
        assert!(err.contains("b: checkpoint [3], model [4]"), "{err}");
    }
}

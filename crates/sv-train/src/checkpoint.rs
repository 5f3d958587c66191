//! Training checkpoints: the model's parameters and the optimizer's moments by module
//! path, with the run's position, in one safetensors file written atomically (temporary
//! file, fsync, rename). Loading is strict: every parameter must be present with its
//! shape, and nothing else may be there.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{Tensor, TensorData};
use safetensors::tensor::Dtype;
use serde::{Deserialize, Serialize};

pub use sv_models::weights::{Values, params_of, serialize_f32, values_of};

use crate::error::{Result, TrainError};
use crate::optim::Moments;

/// Where a run stands: enough to continue it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Epoch in progress.
    pub epoch: u64,
    /// Batches of that epoch already trained on.
    pub batch: u64,
    /// Optimizer steps taken in the whole run.
    pub step: u64,
}

/// Replace `module`'s parameters by `values` (same paths and shapes, nothing missing or
/// left over), keeping each parameter's id and gradient setting.
pub fn load_params<M: Module>(module: M, values: &Values, source: &Path) -> Result<M> {
    struct Load<'a> {
        path: Vec<String>,
        values: &'a Values,
        used: Vec<String>,
        problems: Vec<String>,
    }
    impl ModuleMapper for Load<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let key = self.path.join(".");
            let Some((shape, values)) = self.values.get(&key) else {
                self.problems.push(format!("missing {key}"));
                return p;
            };
            self.used.push(key.clone());
            p.map(|t| {
                if t.dims().as_slice() != shape.as_slice() {
                    self.problems
                        .push(format!("{key}: shape {shape:?}, model has {:?}", t.dims()));
                    return t;
                }
                let device = t.device().inner();
                let fresh =
                    Tensor::<D>::from_data(TensorData::new(values.clone(), shape.clone()), &device);
                leaf_like(fresh, &t)
            })
        }
    }
    let mut l = Load {
        path: Vec::new(),
        values,
        used: Vec::new(),
        problems: Vec::new(),
    };
    let module = module.map(&mut l);
    for key in values.keys() {
        if !l.used.contains(key) {
            l.problems.push(format!("unused {key}"));
        }
    }
    if l.problems.is_empty() {
        Ok(module)
    } else {
        Err(TrainError::Checkpoint {
            path: source.to_path_buf(),
            reason: format!(
                "does not fit this model (another architecture or size?): {}",
                l.problems.join(", ")
            ),
        })
    }
}

/// `value` (a tensor without autodiff) as a parameter in place of `original`: on
/// autodiff with `original`'s gradient-checkpointing strategy when `original` was, and
/// a leaf requiring gradients when `original` required them.
pub(crate) fn leaf_like<const D: usize>(value: Tensor<D>, original: &Tensor<D>) -> Tensor<D> {
    if !original.is_autodiff() {
        return value;
    }
    let mut t = Tensor::from_inner(value);
    if let Some(strategy) = original.gradient_checkpointing_strategy() {
        t = t.with_gradient_checkpointing_strategy(strategy);
    }
    if original.is_require_grad() {
        t.require_grad()
    } else {
        t
    }
}

/// A checkpoint in memory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Model parameters by path.
    pub model: Values,
    /// Optimizer moments by parameter path.
    pub moments: HashMap<String, Moments>,
    /// Exponential moving average of the parameters, when the run keeps one.
    pub ema: Values,
    /// Other state a run must get back exactly on resume (the contrastive feature bank),
    /// by name.
    pub extra: Values,
    /// Where the run stands.
    pub position: Position,
    /// Free-form facts about the run (its resolved config, …), checked on resume.
    pub meta: BTreeMap<String, String>,
}

impl Checkpoint {
    /// Write to `path` atomically: a partial file never replaces a good one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let steps: BTreeMap<&String, [f32; 1]> = self
            .moments
            .iter()
            .map(|(k, m)| (k, [m.step as f32]))
            .collect();
        let mut keys: Vec<&String> = self.moments.keys().collect();
        keys.sort();
        let model = self
            .model
            .iter()
            .map(|(k, (shape, v))| (format!("model/{k}"), shape.as_slice(), v.as_slice()));
        let ema = self
            .ema
            .iter()
            .map(|(k, (shape, v))| (format!("ema/{k}"), shape.as_slice(), v.as_slice()));
        let extra = self
            .extra
            .iter()
            .map(|(k, (shape, v))| (format!("extra/{k}"), shape.as_slice(), v.as_slice()));
        let lens: Vec<[usize; 1]> = keys.iter().map(|k| [self.moments[*k].m.len()]).collect();
        let moments = keys.iter().zip(&lens).flat_map(|(k, len)| {
            let m = &self.moments[*k];
            [
                (format!("m/{k}"), &len[..], m.m.as_slice()),
                (format!("v/{k}"), &len[..], m.v.as_slice()),
                (format!("step/{k}"), &[1usize][..], &steps[*k][..]),
            ]
        });
        let mut meta: HashMap<String, String> = self.meta.clone().into_iter().collect();
        meta.insert(
            "position".into(),
            serde_json::to_string(&self.position).expect("serialisable"),
        );
        let bytes =
            serialize_f32(model.chain(ema).chain(extra).chain(moments), meta).map_err(|e| {
                TrainError::Checkpoint {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }
            })?;
        atomic_write(path, &bytes)
    }

    /// Read a checkpoint written by [`save`](Self::save).
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |reason: String| TrainError::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let mut meta: BTreeMap<String, String> = header
            .metadata()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let position: Position = meta
            .remove("position")
            .ok_or_else(|| bad("no position: not a training checkpoint".into()))
            .and_then(|p| serde_json::from_str(&p).map_err(|e| bad(e.to_string())))?;
        let mut model = BTreeMap::new();
        let mut ema = BTreeMap::new();
        let mut extra = BTreeMap::new();
        let mut moments: HashMap<String, Moments> = HashMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(bad(format!("{name} is {:?}, not F32", view.dtype())));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let (kind, key) = name
                .split_once('/')
                .ok_or_else(|| bad(format!("unexpected tensor {name}")))?;
            let entry = || Moments {
                m: Vec::new(),
                v: Vec::new(),
                step: 0,
            };
            match kind {
                "model" => {
                    model.insert(key.to_string(), (view.shape().to_vec(), values));
                }
                "ema" => {
                    ema.insert(key.to_string(), (view.shape().to_vec(), values));
                }
                "extra" => {
                    extra.insert(key.to_string(), (view.shape().to_vec(), values));
                }
                "m" => moments.entry(key.to_string()).or_insert_with(entry).m = values,
                "v" => moments.entry(key.to_string()).or_insert_with(entry).v = values,
                "step" => {
                    moments.entry(key.to_string()).or_insert_with(entry).step =
                        values.first().copied().unwrap_or(0.0) as u64
                }
                _ => return Err(bad(format!("unexpected tensor {name}"))),
            }
        }
        Ok(Self {
            model,
            moments,
            ema,
            extra,
            position,
            meta,
        })
    }
}

/// Write `bytes` to `path` atomically through [`sv_fs::atomic_write`] (the old file or
/// the new one after any crash; temp files of killed writes are cleaned up).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    sv_fs::atomic_write(path, bytes).map_err(|e| TrainError::io(path, e))
}

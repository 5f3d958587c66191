//! AdamW with parameter groups, global-norm gradient clipping and a warmup-then-cosine
//! schedule, computed as PyTorch's `torch.optim.AdamW` and `clip_grad_norm_` compute
//! them. Groups follow the BEiT/timm convention for fine-tuning: a layer id per
//! parameter (embeddings 0, block i → i + 1, the final norm and head last) whose
//! learning rate is scaled by `layer_decay^(last − id)`, and no weight decay on biases,
//! norms, layer scales, tokens and position embeddings.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Gradients, Tensor};
use serde::{Deserialize, Serialize};

pub use sv_models::ParamGroup as Group;

/// Assigns each parameter (by its module path, e.g. `backbone.blocks.3.mlp.fc1.weight`,
/// and its rank) to a [`Group`]; also says how many layer ids there are (`last + 1`).
/// A model's own groups are [`sv_models::Family::param_groups`].
pub trait Grouping {
    /// The group of a parameter.
    fn group(&self, path: &str, rank: usize) -> Group;
    /// The largest layer id.
    fn last_layer(&self) -> usize;
}

impl Grouping for sv_models::ParamGroups {
    fn group(&self, path: &str, rank: usize) -> Group {
        sv_models::ParamGroups::group(self, path, rank)
    }
    fn last_layer(&self) -> usize {
        sv_models::ParamGroups::last_layer(self)
    }
}

/// AdamW settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamWSettings {
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Decoupled weight decay (on the decaying group).
    pub weight_decay: f64,
    /// Learning-rate factor per layer below the last.
    pub layer_decay: f64,
    /// Clip the global gradient norm to this (none when absent).
    pub clip: Option<f64>,
    /// Learning-rate factor of every layer below the last (backbone ÷ head learning
    /// rate), on top of the layer decay.
    pub backbone_scale: f64,
}

impl Default for AdamWSettings {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.05,
            layer_decay: 0.65,
            clip: Some(3.0),
            backbone_scale: 1.0,
        }
    }
}

/// One parameter's moments and step count.
#[derive(Debug, Clone)]
pub struct Moments {
    /// First moment, flattened.
    pub m: Vec<f32>,
    /// Second moment, flattened.
    pub v: Vec<f32>,
    /// Steps taken.
    pub step: u64,
}

/// AdamW over a module's float parameters, with state keyed by parameter path.
#[derive(Debug, Clone)]
pub struct AdamW<G: Grouping> {
    /// Settings.
    pub settings: AdamWSettings,
    /// Parameter grouping.
    pub grouping: G,
    /// State by parameter path.
    pub state: HashMap<String, Moments>,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Factor the gradients were scaled by (1 when not clipped).
    pub clip_scale: f64,
}

impl<G: Grouping> AdamW<G> {
    /// A fresh optimizer.
    pub fn new(settings: AdamWSettings, grouping: G) -> Self {
        Self {
            settings,
            grouping,
            state: HashMap::new(),
        }
    }

    /// The learning-rate scale of a layer id.
    pub fn lr_scale(&self, layer: usize) -> f64 {
        let last = self.grouping.last_layer();
        self.settings
            .layer_decay
            .powi((last - layer.min(last)) as i32)
    }

    /// One step at base learning rate `lr` with the gradients of `grads` (from the loss's
    /// `backward()`); parameters without a gradient are left alone.
    pub fn step<M: Module>(&mut self, module: M, lr: f64, grads: &Gradients) -> (M, StepReport) {
        let mut collect = GradCollector {
            grads,
            path: Vec::new(),
            out: BTreeMap::new(),
        };
        module.visit(&mut collect);
        let mut grad_values = collect.out;
        // clip_grad_norm_: the norm of the per-tensor norms, in f32, in a fixed (path)
        // order so that runs repeat bit for bit.
        let norms: Vec<f32> = grad_values
            .values()
            .map(|(g, _)| g.iter().map(|v| v * v).sum::<f32>().sqrt())
            .collect();
        let total = norms.iter().map(|n| n * n).sum::<f32>().sqrt();
        let mut scale = 1.0f32;
        if let Some(max) = self.settings.clip {
            let coef = (max as f32 / (total + 1e-6)).min(1.0);
            if coef < 1.0 {
                scale = coef;
                for (g, _) in grad_values.values_mut() {
                    g.iter_mut().for_each(|v| *v *= coef);
                }
            }
        }
        let mut mapper = Updater {
            optim: self,
            grads: grad_values,
            path: Vec::new(),
            lr,
        };
        let module = module.map(&mut mapper);
        (
            module,
            StepReport {
                grad_norm: f64::from(total),
                clip_scale: f64::from(scale),
            },
        )
    }

    /// The AdamW update of one flattened parameter, in place, as PyTorch's single-tensor
    /// path orders it.
    fn update(&mut self, path: &str, rank: usize, value: &mut [f32], grad: &[f32], lr: f64) {
        let group = self.grouping.group(path, rank);
        let lr = (lr * self.lr_scale(group.layer)) as f32;
        let wd = if group.decay {
            self.settings.weight_decay as f32
        } else {
            0.0
        };
        let s = self.settings;
        let st = self
            .state
            .entry(path.to_string())
            .or_insert_with(|| Moments {
                m: vec![0.0; value.len()],
                v: vec![0.0; value.len()],
                step: 0,
            });
        st.step += 1;
        let (b1, b2, eps) = (s.beta1 as f32, s.beta2 as f32, s.eps as f32);
        let bc1 = 1.0 - s.beta1.powi(st.step as i32);
        let bc2 = 1.0 - s.beta2.powi(st.step as i32);
        let step_size = (f64::from(lr) / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let decay = 1.0 - lr * wd;
        for i in 0..value.len() {
            let g = grad[i];
            value[i] *= decay;
            st.m[i] += (g - st.m[i]) * (1.0 - b1);
            st.v[i] = st.v[i] * b2 + (1.0 - b2) * g * g;
            let denom = st.v[i].sqrt() / bc2_sqrt + eps;
            value[i] -= step_size * st.m[i] / denom;
        }
    }
}

/// Collects every float parameter's gradient (flattened) by path.
struct GradCollector<'a> {
    grads: &'a Gradients,
    path: Vec<String>,
    out: BTreeMap<String, (Vec<f32>, usize)>,
}

impl ModuleVisitor for GradCollector<'_> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = param.val().grad(self.grads) {
            let values = g.into_data().convert::<f32>().try_into_vec::<f32>();
            if let Ok(values) = values {
                self.out.insert(self.path.join("."), (values, D));
            }
        }
    }
}

/// Writes the updated values back into the module.
struct Updater<'a, G: Grouping> {
    optim: &'a mut AdamW<G>,
    grads: BTreeMap<String, (Vec<f32>, usize)>,
    path: Vec<String>,
    lr: f64,
}

impl<G: Grouping> ModuleMapper for Updater<'_, G> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let path = self.path.join(".");
        let Some((grad, _)) = self.grads.remove(&path) else {
            return param;
        };
        let (lr, optim) = (self.lr, &mut *self.optim);
        param.map(|tensor| {
            let require_grad = tensor.is_require_grad();
            let device = tensor.device();
            let shape = tensor.shape();
            let inner = tensor.inner();
            let mut values = inner
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .expect("float parameter");
            optim.update(&path, D, &mut values, &grad, lr);
            let inner_device = device.clone().inner();
            let updated =
                Tensor::<D>::from_data(burn::tensor::TensorData::new(values, shape), &inner_device);
            let t = Tensor::from_inner(updated);
            if require_grad { t.require_grad() } else { t }
        })
    }
}

/// Linear warmup from 0 over `warmup` steps, then cosine from `peak` to `floor` at
/// `total` steps.
pub fn warmup_cosine(step: u64, warmup: u64, total: u64, peak: f64, floor: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let t = ((step - warmup) as f64 / span as f64).min(1.0);
    floor + 0.5 * (peak - floor) * (1.0 + (std::f64::consts::PI * t).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dinov2_groups() {
        use sv_models::{Dinov2, Dinov2Classifier, Dinov2Config, Family};
        let backbone = Dinov2::random(&Dinov2Config::small(), &Default::default());
        let g = Dinov2Classifier::with_new_head(backbone, 2).param_groups();
        for (path, rank, layer, decay) in [
            ("backbone.cls_token", 3, 0, false),
            ("backbone.patch_weight", 4, 0, true),
            ("backbone.blocks.3.mlp.fc1.weight", 2, 4, true),
            ("backbone.blocks.3.norm1.gamma", 1, 4, false),
            ("head.weight", 2, 13, true),
        ] {
            assert_eq!(g.group(path, rank), Group { layer, decay }, "{path}");
        }
    }

    #[test]
    fn schedule_warms_up_then_decays() {
        assert!((warmup_cosine(0, 10, 100, 1.0, 0.0) - 0.1).abs() < 1e-12);
        assert!((warmup_cosine(10, 10, 100, 1.0, 0.0) - 1.0).abs() < 1e-12);
        assert!(warmup_cosine(100, 10, 100, 1.0, 0.0).abs() < 1e-12);
    }
}

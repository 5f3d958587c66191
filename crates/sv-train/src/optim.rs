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

/// One parameter's moments and step count, on the host (as checkpoints hold them).
#[derive(Debug, Clone)]
pub struct Moments {
    /// First moment, flattened.
    pub m: Vec<f32>,
    /// Second moment, flattened.
    pub v: Vec<f32>,
    /// Steps taken.
    pub step: u64,
}

/// One parameter's moments where the optimizer keeps them: on the parameter's device
/// once it has stepped, or on the host as restored from a checkpoint until then.
// One per parameter (a few hundred): the variants' inline sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum State {
    Host(Moments),
    Device {
        m: Tensor<1>,
        v: Tensor<1>,
        step: u64,
    },
}

/// AdamW over a module's float parameters, with state keyed by parameter path. The
/// update runs on the parameters' own device: gradients, moments and weights never
/// travel to the host during a step, and with [`AdamW::step_pending`] neither does the
/// gradient norm until the caller reads it.
#[derive(Debug, Clone)]
pub struct AdamW<G: Grouping> {
    /// Settings.
    pub settings: AdamWSettings,
    /// Parameter grouping.
    pub grouping: G,
    state: HashMap<String, State>,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Factor the gradients were scaled by (1 when not clipped).
    pub clip_scale: f64,
    /// The step was skipped: its loss-scaled gradients were not finite.
    pub skipped: bool,
}

/// A [`StepReport`] still on the device: reading it waits for the step to finish, so a
/// training loop reads a run of them at once instead of after every step.
#[derive(Debug, Clone)]
pub struct PendingReport {
    grad_norm: Option<Tensor<1>>,
    clip_scale: Option<Tensor<1>>,
    skipped: bool,
}

impl PendingReport {
    /// Whether the step was skipped (known without reading the device).
    pub fn skipped(&self) -> bool {
        self.skipped
    }

    /// The report, read back from the device.
    pub fn read(self) -> StepReport {
        let value =
            |t: Option<Tensor<1>>, none: f32| f64::from(t.map_or(none, |t| t.into_scalar::<f32>()));
        StepReport {
            grad_norm: value(self.grad_norm, 0.0),
            clip_scale: value(self.clip_scale, 1.0),
            skipped: self.skipped,
        }
    }
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

    /// The moments by parameter path, read back to the host (for a checkpoint).
    pub fn moments(&self) -> HashMap<String, Moments> {
        let host = |t: &Tensor<1>| -> Vec<f32> {
            t.clone()
                .into_data()
                .convert::<f32>()
                .try_into_vec::<f32>()
                .unwrap_or_default()
        };
        self.state
            .iter()
            .map(|(path, state)| {
                let moments = match state {
                    State::Host(m) => m.clone(),
                    State::Device { m, v, step } => Moments {
                        m: host(m),
                        v: host(v),
                        step: *step,
                    },
                };
                (path.clone(), moments)
            })
            .collect()
    }

    /// Continue from `moments` (read from a checkpoint); they move to each parameter's
    /// device at its next step.
    pub fn set_moments(&mut self, moments: HashMap<String, Moments>) {
        self.state = moments
            .into_iter()
            .map(|(path, m)| (path, State::Host(m)))
            .collect();
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
        self.step_scaled(module, lr, grads, 1.0)
    }

    /// [`step`](Self::step) with gradients of a loss multiplied by `loss_scale`
    /// ([`crate::loss_scale::LossScaler`]): they are divided by it first, and when the
    /// scale is not 1 and any of them is not finite the step is skipped (`skipped` in
    /// the report, the module and moments unchanged).
    pub fn step_scaled<M: Module>(
        &mut self,
        module: M,
        lr: f64,
        grads: &Gradients,
        loss_scale: f32,
    ) -> (M, StepReport) {
        let (module, report) = self.step_pending(module, lr, grads, loss_scale);
        (module, report.read())
    }

    /// [`step_scaled`](Self::step_scaled) without waiting for the device: the gradient
    /// norm and the clipping factor are computed and applied there, and the report is
    /// read when the caller wants it. Only a loss scale other than 1 reads the norm at
    /// once, to decide whether to skip the step.
    pub fn step_pending<M: Module>(
        &mut self,
        module: M,
        lr: f64,
        grads: &Gradients,
        loss_scale: f32,
    ) -> (M, PendingReport) {
        let mut collect = GradCollector {
            grads,
            path: Vec::new(),
            out: BTreeMap::new(),
        };
        module.visit(&mut collect);
        let mut grad_values = collect.out;
        if grad_values.is_empty() {
            let report = PendingReport {
                grad_norm: None,
                clip_scale: None,
                skipped: false,
            };
            return (module, report);
        }
        if loss_scale != 1.0 {
            let inverse = 1.0 / loss_scale;
            for g in grad_values.values_mut() {
                *g = g.clone().mul_scalar(inverse);
            }
        }
        // clip_grad_norm_: the norm of the per-tensor norms, in f32, in a fixed (path)
        // order so that runs repeat bit for bit.
        let norms: Vec<Tensor<1>> = grad_values
            .values()
            .map(|g| (g.clone() * g.clone()).sum().sqrt())
            .collect();
        let norms = Tensor::cat(norms, 0);
        let total = (norms.clone() * norms).sum().sqrt();
        if loss_scale != 1.0 && !total.clone().into_scalar::<f32>().is_finite() {
            let report = PendingReport {
                grad_norm: Some(total),
                clip_scale: None,
                skipped: true,
            };
            return (module, report);
        }
        // min(max / (norm + 1e-6), 1), as the host would compute it, applied on the
        // device (a factor of exactly 1 leaves the gradients as they are).
        let clip_scale = self.settings.clip.map(|max| {
            let max = Tensor::<1>::full([1], max as f32, &total.device());
            (max / total.clone().add_scalar(1e-6)).clamp_max(1.0)
        });
        if let Some(coef) = &clip_scale {
            for g in grad_values.values_mut() {
                *g = g.clone() * coef.clone();
            }
        }
        let mut mapper = Updater {
            optim: self,
            grads: grad_values,
            path: Vec::new(),
            lr,
        };
        let module = module.map(&mut mapper);
        let report = PendingReport {
            grad_norm: Some(total),
            clip_scale,
            skipped: false,
        };
        (module, report)
    }

    /// The AdamW update of one flattened parameter on its device, as PyTorch's
    /// single-tensor path orders it: the updated value.
    fn update(
        &mut self,
        path: &str,
        rank: usize,
        value: Tensor<1>,
        grad: Tensor<1>,
        lr: f64,
    ) -> Tensor<1> {
        let group = self.grouping.group(path, rank);
        let lr = (lr * self.lr_scale(group.layer)) as f32;
        let wd = if group.decay {
            self.settings.weight_decay as f32
        } else {
            0.0
        };
        let s = self.settings;
        let device = value.device();
        let [n] = value.dims();
        let on_device = |values: Vec<f32>| {
            Tensor::<1>::from_data(burn::tensor::TensorData::new(values, [n]), &device)
        };
        let (m, v, step) = match self.state.remove(path) {
            Some(State::Device { m, v, step }) => (m, v, step),
            Some(State::Host(h)) if h.m.len() == n && h.v.len() == n => {
                (on_device(h.m), on_device(h.v), h.step)
            }
            _ => (Tensor::zeros([n], &device), Tensor::zeros([n], &device), 0),
        };
        let step = step + 1;
        let (b1, b2, eps) = (s.beta1 as f32, s.beta2 as f32, s.eps as f32);
        let bc1 = 1.0 - s.beta1.powi(step as i32);
        let bc2 = 1.0 - s.beta2.powi(step as i32);
        let step_size = (f64::from(lr) / bc1) as f32;
        let bc2_sqrt = bc2.sqrt() as f32;
        let decay = 1.0 - lr * wd;
        let value = value.mul_scalar(decay);
        let m = m.clone() + (grad.clone() - m).mul_scalar(1.0 - b1);
        let v = v.mul_scalar(b2) + grad.clone().mul_scalar(1.0 - b2) * grad;
        let denom = v.clone().sqrt().div_scalar(bc2_sqrt).add_scalar(eps);
        let value = value - m.clone().mul_scalar(step_size) / denom;
        self.state
            .insert(path.to_string(), State::Device { m, v, step });
        value
    }
}

/// Collects every float parameter's gradient (flattened, on its device) by path.
struct GradCollector<'a> {
    grads: &'a Gradients,
    path: Vec<String>,
    out: BTreeMap<String, Tensor<1>>,
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
            let n = g.shape().num_elements();
            let g = g.cast(burn::tensor::FloatDType::F32).reshape([n]);
            self.out.insert(self.path.join("."), g);
        }
    }
}

/// Writes the updated values back into the module.
struct Updater<'a, G: Grouping> {
    optim: &'a mut AdamW<G>,
    grads: BTreeMap<String, Tensor<1>>,
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
        let Some(grad) = self.grads.remove(&path) else {
            return param;
        };
        let (lr, optim) = (self.lr, &mut *self.optim);
        param.map(|tensor| {
            let shape = tensor.shape();
            let value = tensor.clone().inner();
            let n = shape.num_elements();
            let updated = optim.update(&path, D, value.reshape([n]), grad, lr);
            crate::checkpoint::leaf_like(updated.reshape(shape), &tensor)
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

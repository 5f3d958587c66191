//! The floating-point precision a network computes in (`--precision f32|bf16|f16`).
//!
//! In half precision the backbone's parameters are cast once ([`in_precision`]) and the
//! activations follow them; LayerNorm statistics and the GRN norm are computed in f32,
//! the linear head runs in f32 on the f32 pooled feature, and a classifier's logits and
//! features come out in f32 whatever it computed in, so every caller reads f32. For
//! training, the f32 parameters stay the master copy: each step casts them
//! ([`in_precision`] on the autodiff model), the gradients flow back through the casts
//! in f32, and the optimizer updates the f32 weights.

use std::fmt;
use std::str::FromStr;

use burn::module::{Module, ModuleMapper, Param};
use burn::tensor::{DType, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

/// The names `--precision` accepts.
pub const PRECISION_NAMES: &str = "f32, bf16 or f16";

/// The floating-point type of a network's weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Single precision: the reference numerics.
    #[default]
    F32,
    /// bfloat16: f32's range with 8 bits of mantissa; needs no loss scaling.
    Bf16,
    /// IEEE half: 11 bits of mantissa but a range up to 65504, so training needs
    /// dynamic loss scaling.
    F16,
}

impl Precision {
    /// All precisions, in the order of [`PRECISION_NAMES`].
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::Bf16, Precision::F16];

    /// burn's float type of this precision.
    pub fn dtype(self) -> FloatDType {
        match self {
            Precision::F32 => FloatDType::F32,
            Precision::Bf16 => FloatDType::BF16,
            Precision::F16 => FloatDType::F16,
        }
    }

    /// Whether this is a 16-bit precision.
    pub fn is_half(self) -> bool {
        self != Precision::F32
    }

    /// The name, as parsed.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A precision name that is not one of [`PRECISION_NAMES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown precision `{0}` (expected {PRECISION_NAMES})")]
pub struct UnknownPrecision(pub String);

impl FromStr for Precision {
    type Err = UnknownPrecision;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "f16" | "fp16" | "float16" | "half" => Ok(Precision::F16),
            _ => Err(UnknownPrecision(s.trim().to_string())),
        }
    }
}

/// Refuses a half precision that `device` cannot compute in. burn stores bf16 on
/// devices whose shaders have no bf16 arithmetic (Vulkan and WebGPU: only conversions),
/// and computing in it there gives garbage, not an error; the message names the
/// precisions the device does compute in.
pub fn ensure_computes(precision: Precision, device: &burn::tensor::Device) -> crate::Result<()> {
    let computes =
        |p: Precision| p == Precision::F32 || device.supports_dtype(DType::from(p.dtype()));
    if computes(precision) {
        return Ok(());
    }
    let usable: Vec<&str> = Precision::ALL
        .into_iter()
        .filter(|p| computes(*p))
        .map(Precision::name)
        .collect();
    Err(crate::ModelError::Config(format!(
        "this device cannot compute in {precision} (use --precision {})",
        usable.join(" or ")
    )))
}

/// `module` with its float parameters cast to `precision` (unchanged for f32), except
/// a classifier's `head`, which stays f32 so that the logits keep f32's resolution (a
/// bf16 logit near 4 moves in steps of 1/64). On an autodiff device the casts are
/// recorded, so gradients reach the original parameters in their own type.
pub fn in_precision<M: Module>(module: M, precision: Precision) -> M {
    struct Cast {
        dtype: FloatDType,
        path: Vec<String>,
    }
    impl ModuleMapper for Cast {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            if self.path.first().map(String::as_str) == Some("head") {
                return param;
            }
            let dtype = self.dtype;
            param.map(|t| t.cast(dtype))
        }
    }
    if precision == Precision::F32 {
        return module;
    }
    module.map(&mut Cast {
        dtype: precision.dtype(),
        path: Vec::new(),
    })
}

/// `t` in f32 (itself when it already is).
pub(crate) fn f32<const D: usize>(t: Tensor<D>) -> Tensor<D> {
    t.cast(FloatDType::F32)
}

/// `t` cast to the float type `dtype` of another float tensor (itself when it already
/// is).
pub(crate) fn cast_to<const D: usize>(t: Tensor<D>, dtype: DType) -> Tensor<D> {
    t.cast(FloatDType::from(dtype))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_computes_in_every_precision() {
        for device in [
            burn::tensor::Device::flex(),
            burn::tensor::Device::flex().autodiff(),
        ] {
            for p in Precision::ALL {
                ensure_computes(p, &device).expect("Flex computes in f32, bf16 and f16");
            }
        }
    }

    #[test]
    fn names_round_trip_and_mistakes_are_named() {
        for p in Precision::ALL {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!("BF16".parse::<Precision>().unwrap(), Precision::Bf16);
        let e = "f8".parse::<Precision>().unwrap_err().to_string();
        assert!(e.contains("f8") && e.contains(PRECISION_NAMES), "{e}");
    }

    #[test]
    fn gradients_reach_the_f32_parameters_through_the_casts() {
        use burn::nn::Linear;
        use burn::tensor::Device;
        let device = Device::default().autodiff();
        let layer = Linear {
            weight: Param::from_tensor(
                Tensor::<2>::from_floats([[1.0, 2.0], [3.0, 4.0]], &device).require_grad(),
            ),
            bias: None,
        };
        let half = in_precision(layer.clone(), Precision::Bf16);
        assert_eq!(half.weight.val().dtype(), DType::BF16);
        let x = Tensor::<2>::from_floats([[1.0, 1.0]], &device).cast(FloatDType::BF16);
        let loss = f32(half.forward(x)).sum();
        let grads = loss.backward();
        let g = layer
            .weight
            .val()
            .grad(&grads)
            .expect("a gradient on the master weight");
        assert_eq!(g.dtype(), DType::F32);
        assert_eq!(
            g.into_data().try_to_vec::<f32>().unwrap(),
            vec![1.0, 1.0, 1.0, 1.0]
        );
    }
}

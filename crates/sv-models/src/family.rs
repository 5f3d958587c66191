//! The one model abstraction: what a backbone family provides ([`BackboneModel`] for
//! the backbone, [`Family`] for the classifier over it) and the registry of families,
//! from which [`Architecture`], [`Backbone`] and [`Network`] are generated.
//!
//! Adding a family is its folder (`src/<family>/`, with a `family.rs` implementing the
//! two traits), its `mod` line in `lib.rs` and one line in the registry at the end of
//! this file. Detection, loading, the new-head fallback, export, parameter groups and
//! the ensemble weight then work for it everywhere.

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use crate::classify::NetworkOptions;
use crate::error::Result;
use crate::weights::WeightMap;

/// Where a parameter falls for layer-wise learning-rate decay: its layer id (0 = the
/// embeddings, block `i` → `i + 1`, the final norm and head last) and whether weight
/// decay applies (not to biases, norms, layer scales, tokens or position embeddings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamGroup {
    /// Layer id.
    pub layer: usize,
    /// Weight decay applies.
    pub decay: bool,
}

/// The rule of a [`ParamGroups`]: parameter path and rank to group.
type AssignGroup = dyn Fn(&str, usize) -> ParamGroup + Send + Sync;

/// Assigns each parameter, by its module path and rank, to a [`ParamGroup`].
#[derive(Clone)]
pub struct ParamGroups {
    last_layer: usize,
    assign: Arc<AssignGroup>,
}

impl ParamGroups {
    /// Groups given by `assign` (path, rank → group) whose largest layer id is
    /// `last_layer`.
    pub fn new(
        last_layer: usize,
        assign: impl Fn(&str, usize) -> ParamGroup + Send + Sync + 'static,
    ) -> Self {
        Self {
            last_layer,
            assign: Arc::new(assign),
        }
    }

    /// The group of the parameter at `path` (e.g. `backbone.blocks.3.mlp.fc1.weight`)
    /// of rank `rank`.
    pub fn group(&self, path: &str, rank: usize) -> ParamGroup {
        (self.assign)(path, rank)
    }

    /// The largest layer id.
    pub fn last_layer(&self) -> usize {
        self.last_layer
    }
}

impl Debug for ParamGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParamGroups")
            .field("last_layer", &self.last_layer)
            .finish_non_exhaustive()
    }
}

/// A backbone: pixels in, one pooled feature per image out.
pub trait BackboneModel: Module + Debug + Sized {
    /// Pooled features `[B, D]` of preprocessed pixels `[B, 3, H, W]`.
    fn pooled(&self, pixels: Tensor<4>) -> Tensor<2>;
    /// Set the stochastic depth rate: the last block's, rising linearly from 0.
    fn set_drop_path(&mut self, rate: f64);
    /// The groups of the backbone's parameters, by their paths inside the backbone
    /// (`blocks.3.mlp.fc1.weight`); its `last_layer` is the final norm's (and the
    /// head's) layer id.
    fn param_groups(&self) -> ParamGroups;
}

/// A classifier family: a [`BackboneModel`] with a linear head, its detection, loading
/// and export. Implemented by each family's classifier type.
pub trait Family: Module + Logits + Debug + Sized + Into<Network> {
    /// The backbone.
    type Backbone: BackboneModel + Into<Backbone>;
    /// The name shown, written in `ensemble.json` and parsed (`dinov2`).
    const NAME: &'static str;
    /// Other names accepted when parsing, lowercase without separators.
    const ALIASES: &'static [&'static str];
    /// The HF `config.json` `model_type` values of this family.
    const MODEL_TYPES: &'static [&'static str];
    /// The transformers class an export loads as.
    const HF_CLASS: &'static str;
    /// The member weight in an ensemble when `ensemble.json` gives none.
    const ENSEMBLE_WEIGHT: f64;

    /// Whether a checkpoint holds this family's characteristic keys (any wrapper prefix).
    fn has_keys(map: &WeightMap) -> bool;
    /// The classifier, with its head, from a checkpoint's tensors (`opts.config_json`
    /// already resolved).
    fn from_weights(map: WeightMap, opts: &NetworkOptions, device: &Device) -> Result<Self>;
    /// The backbone of a checkpoint that holds no head.
    fn load_backbone(path: &Path, device: &Device) -> Result<Self::Backbone>;
    /// A classifier on `backbone` with a new zero head of `num_labels`.
    fn with_new_head(backbone: Self::Backbone, num_labels: usize) -> Self;
    /// The backbone.
    fn backbone(&self) -> &Self::Backbone;
    /// The backbone, mutably.
    fn backbone_mut(&mut self) -> &mut Self::Backbone;
    /// The backbone, the head dropped.
    fn into_backbone(self) -> Self::Backbone;
    /// The feature the head reads `[B, D]` and the logits `[B, num_labels]`.
    fn features_logits(&self, pixels: Tensor<4>) -> (Tensor<2>, Tensor<2>);
    /// Number of labels of the head.
    fn num_labels(&self) -> usize;
    /// The head's outputs in reverse order (for a two-label head: the labels swapped).
    fn reverse_labels(&mut self);
    /// The linear head (weight `[in, labels]`).
    fn head_mut(&mut self) -> &mut burn::nn::Linear;
    /// Whether the head reads the pooled feature the transformers layout exports (a
    /// timm head on another feature cannot be exported).
    fn head_on_pooled(&self) -> bool {
        true
    }
    /// Write the classifier in the transformers layout into `dir` ([`crate::export`]).
    fn export_hf(&self, image_size: u32, name: &str, dir: &Path) -> Result<()>;

    /// The classifier's parameter groups: the backbone's under `backbone.`, everything
    /// else (the head) in the last layer, decayed when a matrix.
    fn param_groups(&self) -> ParamGroups {
        let inner = self.backbone().param_groups();
        let last = inner.last_layer();
        ParamGroups::new(last, move |path, rank| {
            match path.strip_prefix("backbone.") {
                Some(rest) => inner.group(rest, rank),
                None => ParamGroup {
                    layer: last,
                    decay: rank > 1,
                },
            }
        })
    }
}

/// A model that gives logits for preprocessed pixels: every [`Family`] and [`Network`].
pub trait Logits {
    /// Logits `[B, num_labels]` of preprocessed pixels `[B, 3, H, W]`.
    fn logits(&self, pixels: Tensor<4>) -> Tensor<2>;
}

impl Logits for Network {
    fn logits(&self, pixels: Tensor<4>) -> Tensor<2> {
        self.forward(pixels)
    }
}

/// A computation generic over the family, applied to a [`Network`] by
/// [`Network::apply`] (how code outside this crate runs generic code, such as a training
/// loop, on whichever family a network is).
pub trait FamilyFn {
    /// What it gives.
    type Output;
    /// Run on a classifier of family `F`.
    fn apply<F: Family>(self, model: F) -> Self::Output;
}

/// The object-safe part of [`Family`], through which [`Network`] dispatches.
pub(crate) trait DynClassifier {
    fn logits(&self, pixels: Tensor<4>) -> Tensor<2>;
    fn num_labels(&self) -> usize;
    fn reverse_labels(&mut self);
    fn head_on_pooled(&self) -> bool;
    fn export_hf(&self, image_size: u32, name: &str, dir: &Path) -> Result<()>;
    fn set_drop_path(&mut self, rate: f64);
    fn head_mut(&mut self) -> &mut burn::nn::Linear;
}

impl<F: Family> DynClassifier for F {
    fn logits(&self, pixels: Tensor<4>) -> Tensor<2> {
        Logits::logits(self, pixels)
    }
    fn num_labels(&self) -> usize {
        Family::num_labels(self)
    }
    fn reverse_labels(&mut self) {
        Family::reverse_labels(self)
    }
    fn head_on_pooled(&self) -> bool {
        Family::head_on_pooled(self)
    }
    fn export_hf(&self, image_size: u32, name: &str, dir: &Path) -> Result<()> {
        Family::export_hf(self, image_size, name, dir)
    }
    fn set_drop_path(&mut self, rate: f64) {
        BackboneModel::set_drop_path(self.backbone_mut(), rate)
    }
    fn head_mut(&mut self) -> &mut burn::nn::Linear {
        Family::head_mut(self)
    }
}

/// The object-safe part of [`BackboneModel`], through which [`Backbone`] dispatches.
pub(crate) trait DynBackbone {
    fn pooled(&self, pixels: Tensor<4>) -> Tensor<2>;
    fn set_drop_path(&mut self, rate: f64);
}

impl<B: BackboneModel> DynBackbone for B {
    fn pooled(&self, pixels: Tensor<4>) -> Tensor<2> {
        BackboneModel::pooled(self, pixels)
    }
    fn set_drop_path(&mut self, rate: f64) {
        BackboneModel::set_drop_path(self, rate)
    }
}

/// Generates, from the list of families, the enums that name them and the per-family
/// dispatch (each enum's only `match` over its variants).
macro_rules! families {
    ($( $(#[$doc:meta])* $variant:ident => $classifier:ty ),+ $(,)?) => {
        /// The architectures a classifier can have: one per registered family.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Architecture {
            $( $(#[$doc])* $variant, )+
        }

        /// A classification network of any registered family.
        // Held once per loaded model (the tensors live on the heap): the variants'
        // inline sizes do not matter.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug)]
        pub enum Network {
            $( $(#[$doc])* $variant($classifier), )+
        }

        /// A backbone without a head, of any registered family.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug)]
        pub enum Backbone {
            $( $(#[$doc])* $variant(<$classifier as Family>::Backbone), )+
        }

        $(
            impl From<$classifier> for Network {
                fn from(model: $classifier) -> Self {
                    Network::$variant(model)
                }
            }
            impl From<<$classifier as Family>::Backbone> for Backbone {
                fn from(model: <$classifier as Family>::Backbone) -> Self {
                    Backbone::$variant(model)
                }
            }
        )+

        impl Architecture {
            /// Every registered architecture, in the order detection tries them.
            pub const ALL: &'static [Architecture] = &[$(Architecture::$variant),+];

            /// The name shown, written in `ensemble.json` and parsed.
            pub fn name(self) -> &'static str {
                match self { $(Architecture::$variant => <$classifier as Family>::NAME,)+ }
            }
            pub(crate) fn aliases(self) -> &'static [&'static str] {
                match self { $(Architecture::$variant => <$classifier as Family>::ALIASES,)+ }
            }
            pub(crate) fn model_types(self) -> &'static [&'static str] {
                match self {
                    $(Architecture::$variant => <$classifier as Family>::MODEL_TYPES,)+
                }
            }
            /// The transformers class an export of this architecture loads as.
            pub fn hf_class(self) -> &'static str {
                match self { $(Architecture::$variant => <$classifier as Family>::HF_CLASS,)+ }
            }
            /// The member weight in an ensemble when `ensemble.json` gives none.
            pub fn ensemble_weight(self) -> f64 {
                match self {
                    $(Architecture::$variant => <$classifier as Family>::ENSEMBLE_WEIGHT,)+
                }
            }
            pub(crate) fn has_keys(self, map: &WeightMap) -> bool {
                match self {
                    $(Architecture::$variant => <$classifier as Family>::has_keys(map),)+
                }
            }
            pub(crate) fn classifier_from_weights(
                self,
                map: WeightMap,
                opts: &NetworkOptions,
                device: &Device,
            ) -> Result<Network> {
                Ok(match self {
                    $(Architecture::$variant => Network::$variant(
                        <$classifier as Family>::from_weights(map, opts, device)?,
                    ),)+
                })
            }
            pub(crate) fn backbone_from_file(self, path: &Path, device: &Device) -> Result<Backbone> {
                Ok(match self {
                    $(Architecture::$variant => Backbone::$variant(
                        <$classifier as Family>::load_backbone(path, device)?,
                    ),)+
                })
            }
        }

        impl Network {
            /// The architecture.
            pub fn architecture(&self) -> Architecture {
                match self { $(Network::$variant(_) => Architecture::$variant,)+ }
            }
            /// Run a computation generic over the family on this network.
            pub fn apply<V: FamilyFn>(self, f: V) -> V::Output {
                match self { $(Network::$variant(m) => f.apply(m),)+ }
            }
            /// The backbone, its head dropped.
            pub fn into_backbone(self) -> Backbone {
                match self { $(Network::$variant(m) => Backbone::$variant(m.into_backbone()),)+ }
            }
            /// The network computing in `precision` ([`crate::in_precision`]); its
            /// logits still come out in f32.
            pub fn in_precision(self, precision: crate::Precision) -> Network {
                match self {
                    $(Network::$variant(m) => {
                        Network::$variant(crate::in_precision(m, precision))
                    })+
                }
            }
            pub(crate) fn as_dyn(&self) -> &dyn DynClassifier {
                match self { $(Network::$variant(m) => m,)+ }
            }
            pub(crate) fn as_dyn_mut(&mut self) -> &mut dyn DynClassifier {
                match self { $(Network::$variant(m) => m,)+ }
            }
        }

        impl Backbone {
            /// The architecture.
            pub fn architecture(&self) -> Architecture {
                match self { $(Backbone::$variant(_) => Architecture::$variant,)+ }
            }
            /// A classifier on this backbone with a new head of `num_labels` (zero weights).
            pub fn with_new_head(self, num_labels: usize) -> Network {
                match self {
                    $(Backbone::$variant(m) => Network::$variant(
                        <$classifier as Family>::with_new_head(m, num_labels),
                    ),)+
                }
            }
            pub(crate) fn as_dyn(&self) -> &dyn DynBackbone {
                match self { $(Backbone::$variant(m) => m,)+ }
            }
            pub(crate) fn as_dyn_mut(&mut self) -> &mut dyn DynBackbone {
                match self { $(Backbone::$variant(m) => m,)+ }
            }
        }
    };
}

// The registry: one line per family.
families! {
    /// DINOv2 with registers and a linear head on concat(CLS, mean patch).
    Dinov2 => crate::dinov2::Dinov2Classifier,
    /// ConvNeXt-V2 and a linear head on the normed pooled feature.
    ConvNextV2 => crate::convnext::ConvNextV2Classifier,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_family_round_trips_its_names() {
        for &arch in Architecture::ALL {
            assert_eq!(arch.name().parse::<Architecture>().unwrap(), arch);
            for alias in arch.aliases() {
                assert_eq!(alias.parse::<Architecture>().unwrap(), arch, "{alias}");
            }
            let json = serde_json::to_string(&arch).unwrap();
            assert_eq!(json, format!("\"{}\"", arch.name()));
            assert_eq!(serde_json::from_str::<Architecture>(&json).unwrap(), arch);
            for model_type in arch.model_types() {
                let config = format!("{{\"model_type\": \"{model_type}\"}}");
                assert_eq!(Architecture::from_hf_config(&config), Some(arch));
            }
            assert!(arch.ensemble_weight() > 0.0);
            assert!(arch.hf_class().ends_with("ForImageClassification"));
        }
        let err = "resnet".parse::<Architecture>().unwrap_err().to_string();
        assert!(
            err.contains("dinov2") && err.contains("convnextv2"),
            "{err}"
        );
        assert!(serde_json::from_str::<Architecture>("\"resnet\"").is_err());
    }

    #[test]
    fn the_head_is_the_last_layer_and_decays_as_a_matrix() {
        use crate::dinov2::{Dinov2, Dinov2Classifier, Dinov2Config};
        let mut cfg = Dinov2Config::small();
        cfg.num_layers = 2;
        let model = Dinov2Classifier::with_new_head(Dinov2::random(&cfg, &Device::default()), 2);
        let groups = model.param_groups();
        assert_eq!(groups.last_layer(), 3);
        for (path, rank, layer, decay) in [
            ("backbone.pos_embed", 3, 0, false),
            ("backbone.blocks.1.attn.qkv.weight", 2, 2, true),
            ("backbone.norm.gamma", 1, 3, false),
            ("head.weight", 2, 3, true),
            ("head.bias", 1, 3, false),
        ] {
            assert_eq!(
                groups.group(path, rank),
                ParamGroup { layer, decay },
                "{path}"
            );
        }
    }
}

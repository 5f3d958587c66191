//! The quickstart: a small synthetic street-scene set, a 0.2 M-parameter ConvNeXt-V2
//! trained on it from scratch on the CPU, evaluated on its own held-out split. Needs no
//! network, no GPU and no account.

use std::path::{Path, PathBuf};

use sv_data::{SplitFractions, assign_splits, write_manifest};

use crate::checkpoint::atomic_write;
use crate::error::Result;
use crate::finetune::{Data, FinetuneConfig};

/// The augmentation the quickstart trains with (written to the run for reference).
pub const PIPELINE: &str = r#"# The quickstart's training augmentation (64 × 64 synthetic scenes).
[[step]]
op = "random_resized_crop"
size = 64
scale = [0.6, 1.0]

[[step]]
op = "horizontal_flip"
p = 0.5

[[step]]
op = "brightness_contrast"
p = 0.3

[[step]]
op = "gaussian_noise"
std = [2.0, 6.0]
p = 0.2
"#;

/// Scenes the quickstart renders by default.
pub const DEFAULT_SCENES: u64 = 2000;

/// Where the quickstart puts things under its directory.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Rendered images (`roadwork/`, `no_roadwork/`).
    pub data: PathBuf,
    /// The manifest, with splits.
    pub manifest: PathBuf,
    /// The augmentation pipeline.
    pub pipeline: PathBuf,
    /// The training run.
    pub run: PathBuf,
    /// The model in the transformers layout.
    pub export: PathBuf,
}

impl Layout {
    /// The layout under `dir`.
    pub fn under(dir: &Path) -> Self {
        Self {
            data: dir.join("data"),
            manifest: dir.join("data").join("manifest.jsonl"),
            pipeline: dir.join("augment.toml"),
            run: dir.join("run"),
            export: dir.join("export"),
        }
    }
}

/// Render `scenes` scenes, split them 80/10/10, write the manifest and the pipeline, and
/// return the data and the training config (`epochs` passes).
pub fn prepare(
    layout: &Layout,
    scenes: u64,
    epochs: u64,
    seed: u64,
) -> Result<(Data, Vec<sv_data::Sample>, FinetuneConfig)> {
    let mut samples = sv_data::synthetic::generate(&layout.data, scenes, 64, seed)?;
    assign_splits(&mut samples, &SplitFractions::default(), seed)?;
    write_manifest(&layout.manifest, samples.iter())?;
    atomic_write(&layout.pipeline, PIPELINE.as_bytes())?;
    let test: Vec<_> = samples
        .iter()
        .filter(|s| s.split == Some(sv_data::Split::Test))
        .cloned()
        .collect();
    let config = FinetuneConfig {
        model: "convnextv2-quickstart".into(),
        image_size: 64,
        epochs,
        batch_size: 32,
        lr: 2e-3,
        backbone_lr: 2e-3,
        layer_decay: 1.0,
        weight_decay: 0.05,
        warmup_steps: 20,
        min_lr_ratio: 0.05,
        clip: 3.0,
        drop_path: 0.0,
        ema: 0.0,
        balanced: true,
        augment: layout.pipeline.to_string_lossy().into_owned(),
        seed,
        checkpoint_every: 25,
        incremental: None,
        hard_negatives: None,
        precision: sv_models::Precision::F32,
        gradient_checkpointing: false,
    };
    Ok((Data::from_samples(samples)?, test, config))
}

/// After training: the finished run's model scored on the held-out `test` split (never
/// seen in training or model selection) and exported in the transformers layout to
/// `layout.export`. Gives the test report.
pub fn test_and_export(
    layout: &Layout,
    run: &crate::finetune::RunDir,
    config: &FinetuneConfig,
    test: &[sv_data::Sample],
    device: &burn::tensor::Device,
) -> Result<crate::metrics::Report> {
    let model = crate::finetune::load_trained(run, config, device)?;
    let pipeline = std::sync::Arc::new(crate::finetune::eval_pipeline_for(config)?);
    let pairs = crate::finetune::predict(&model, test, pipeline, 64, device)?;
    crate::export::export_network(&model, config.image_size, None, &layout.export)?;
    Ok(crate::metrics::Report::of(&pairs))
}

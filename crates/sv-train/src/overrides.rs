//! How a run's settings are layered: flags over a config file over the defaults, or a
//! resumed run's own `config.toml` alone.

use std::path::{Path, PathBuf};

use crate::error::{Result, TrainError};
use crate::finetune::{FinetuneConfig, RunDir};

/// Settings given on the command line, each replacing the config file's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FinetuneOverrides {
    /// Network name or checkpoint.
    pub model: Option<String>,
    /// Epochs.
    pub epochs: Option<u64>,
    /// Batch size.
    pub batch_size: Option<usize>,
    /// Head learning rate.
    pub lr: Option<f64>,
    /// Backbone learning rate.
    pub backbone_lr: Option<f64>,
    /// Augmentation preset or pipeline file.
    pub augment: Option<String>,
    /// Seed.
    pub seed: Option<u64>,
    /// Steps between checkpoints.
    pub checkpoint_every: Option<u64>,
    /// A finished run (or its checkpoint) to continue from on new data.
    pub incremental: Option<PathBuf>,
    /// Add the contrastive hard-negative term with its default settings.
    pub hard_negatives: bool,
    /// Precision of the forward and backward passes.
    pub precision: Option<sv_models::Precision>,
    /// Turn gradient checkpointing on.
    pub gradient_checkpointing: bool,
}

impl FinetuneOverrides {
    /// Whether no setting is given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `config` with these settings replacing its own.
    pub fn apply(&self, mut config: FinetuneConfig) -> FinetuneConfig {
        let o = self.clone();
        config.model = o.model.unwrap_or(config.model);
        config.epochs = o.epochs.unwrap_or(config.epochs);
        config.batch_size = o.batch_size.unwrap_or(config.batch_size);
        config.lr = o.lr.unwrap_or(config.lr);
        config.backbone_lr = o.backbone_lr.unwrap_or(config.backbone_lr);
        config.augment = o.augment.unwrap_or(config.augment);
        config.seed = o.seed.unwrap_or(config.seed);
        config.checkpoint_every = o.checkpoint_every.unwrap_or(config.checkpoint_every);
        config.precision = o.precision.unwrap_or(config.precision);
        config.gradient_checkpointing |= o.gradient_checkpointing;
        if let Some(v) = o.incremental {
            let v = std::path::absolute(&v).unwrap_or(v);
            config.incremental = Some(v.to_string_lossy().into_owned());
        }
        if o.hard_negatives && config.hard_negatives.is_none() {
            config.hard_negatives = Some(Default::default());
        }
        config
    }
}

fn read_config(path: &Path, what: &str) -> Result<FinetuneConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::Config {
        source_name: what.into(),
        reason: format!("reading {}: {e}", path.display()),
    })?;
    FinetuneConfig::from_toml(&text, &path.display().to_string())
}

impl FinetuneConfig {
    /// The settings of a run in `run`: with `resume`, its own `config.toml` (nothing else
    /// may be given); otherwise `overrides` over the `file` given, else over the source of
    /// an incremental run, else over the defaults. Validated.
    pub fn layered(
        run: &RunDir,
        resume: bool,
        file: Option<&Path>,
        overrides: &FinetuneOverrides,
    ) -> Result<Self> {
        if resume {
            if file.is_some() || !overrides.is_empty() {
                return Err(TrainError::Config {
                    source_name: "--resume".into(),
                    reason: "a resumed run continues with its own config.toml; drop the other \
                             settings"
                        .into(),
                });
            }
            return run.read_config();
        }
        let base = match (file, &overrides.incremental) {
            (Some(path), _) => read_config(path, "--config")?,
            (None, Some(source)) => Self::continuing(source).map_err(|e| TrainError::Config {
                source_name: format!("--incremental {}", source.display()),
                reason: e.to_string(),
            })?,
            (None, None) => Self::default(),
        };
        let config = overrides.apply(base);
        config.validate("<flags>")?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_replace_the_file_and_resume_takes_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "epochs = 3\nseed = 9\n").unwrap();
        let run = RunDir {
            root: dir.path().join("run"),
        };
        let flags = FinetuneOverrides {
            epochs: Some(5),
            ..Default::default()
        };
        let c = FinetuneConfig::layered(&run, false, Some(&file), &flags).unwrap();
        assert_eq!((c.epochs, c.seed), (5, 9));
        let c = FinetuneConfig::layered(&run, false, None, &FinetuneOverrides::default()).unwrap();
        assert_eq!(c, FinetuneConfig::default());
        let err = FinetuneConfig::layered(&run, true, None, &flags).unwrap_err();
        assert!(err.to_string().contains("own config.toml"), "{err}");
        std::fs::create_dir_all(&run.root).unwrap();
        std::fs::write(run.config(), "epochs = 7\n").unwrap();
        let c = FinetuneConfig::layered(&run, true, None, &FinetuneOverrides::default()).unwrap();
        assert_eq!(c.epochs, 7);
    }
}

//! Dynamic loss scaling for f16 training, as PyTorch's `GradScaler`: the loss is
//! multiplied by a scale before backward so that small gradients survive f16's range;
//! the optimizer divides them back, and a step whose gradients overflowed is skipped
//! and halves the scale, while 2000 clean steps in a row double it.

use std::path::Path;

use crate::checkpoint::Checkpoint;
use crate::error::{Result, TrainError};

/// The `extra` tensor of a checkpoint holding `[scale, clean steps]`.
const KEY: &str = "loss_scale";

/// The scale and its history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossScaler {
    scale: f32,
    clean_steps: u32,
}

impl LossScaler {
    /// The first scale (PyTorch's default, 2¹⁶).
    pub const INITIAL: f32 = 65536.0;
    /// Clean steps after which the scale doubles.
    pub const GROWTH_INTERVAL: u32 = 2000;

    /// A scaler at its initial scale.
    pub fn new() -> Self {
        Self {
            scale: Self::INITIAL,
            clean_steps: 0,
        }
    }

    /// The factor the loss is multiplied by before backward (a power of two, so scaling
    /// and unscaling are exact).
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Account for a step: `finite` when its gradients were finite (and it was taken).
    pub fn update(&mut self, finite: bool) {
        if finite {
            self.clean_steps += 1;
            if self.clean_steps >= Self::GROWTH_INTERVAL {
                self.scale = (self.scale * 2.0).min(f32::MAX);
                self.clean_steps = 0;
            }
        } else {
            // Not below 2⁻²⁴: a scale that small means the loss itself is not finite.
            self.scale = (self.scale * 0.5).max(2f32.powi(-24));
            self.clean_steps = 0;
        }
    }

    /// Put the state into `ck`.
    pub fn save_into(&self, ck: &mut Checkpoint) {
        ck.extra.insert(
            KEY.into(),
            (vec![2], vec![self.scale, self.clean_steps as f32]),
        );
    }

    /// The state `ck` (read from `path`) holds, or a fresh scaler when it holds none.
    pub fn restore(ck: &Checkpoint, path: &Path) -> Result<Self> {
        let Some((_, values)) = ck.extra.get(KEY) else {
            return Ok(Self::new());
        };
        match values.as_slice() {
            [scale, clean] if scale.is_finite() && *scale > 0.0 && *clean >= 0.0 => Ok(Self {
                scale: *scale,
                clean_steps: *clean as u32,
            }),
            other => Err(TrainError::Checkpoint {
                path: path.to_path_buf(),
                reason: format!("{KEY} holds {other:?}, not a positive scale and a step count"),
            }),
        }
    }
}

impl Default for LossScaler {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_halves_and_clean_runs_double() {
        let mut s = LossScaler::new();
        s.update(false);
        assert_eq!(s.scale(), 32768.0);
        for _ in 0..LossScaler::GROWTH_INTERVAL - 1 {
            s.update(true);
        }
        assert_eq!(s.scale(), 32768.0);
        s.update(true);
        assert_eq!(s.scale(), 65536.0);
        // An overflow resets the run of clean steps.
        for _ in 0..10 {
            s.update(true);
        }
        s.update(false);
        for _ in 0..LossScaler::GROWTH_INTERVAL - 1 {
            s.update(true);
        }
        assert_eq!(s.scale(), 32768.0);
    }

    #[test]
    fn state_round_trips_through_a_checkpoint() {
        let mut ck = Checkpoint {
            model: Default::default(),
            moments: Default::default(),
            ema: Default::default(),
            extra: Default::default(),
            position: crate::checkpoint::Position {
                epoch: 0,
                batch: 0,
                step: 0,
            },
            meta: Default::default(),
        };
        let path = Path::new("ck.safetensors");
        assert_eq!(LossScaler::restore(&ck, path).unwrap(), LossScaler::new());
        let mut s = LossScaler::new();
        s.update(false);
        s.update(true);
        s.save_into(&mut ck);
        assert_eq!(LossScaler::restore(&ck, path).unwrap(), s);
        ck.extra.insert(KEY.into(), (vec![2], vec![f32::NAN, 0.0]));
        let e = LossScaler::restore(&ck, path).unwrap_err().to_string();
        assert!(e.contains(KEY) && e.contains("ck.safetensors"), "{e}");
    }
}

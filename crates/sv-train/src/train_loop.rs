//! The fine-tuning loop, as named steps: set up or resume, train an epoch (each step:
//! loss with its contrastive term, backward, AdamW, the moving average, a checkpoint
//! every `checkpoint_every` steps), validate, checkpoint, and the final save.
//!
//! The order of everything that draws random numbers is fixed by the step count, so a
//! run resumed from any checkpoint ends with the weights of one never interrupted.

use std::sync::Arc;

use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor};
use sv_augment::{Pipeline, Step};
use sv_data::{BalancedSampler, ImageBatcher, Label, SampleDataset, epoch_batches};
use sv_models::{Family, ParamGroups, Precision, in_precision};

use crate::checkpoint::{Checkpoint, Position, atomic_write, load_params, params_of};
use crate::ema::MovingAverage;
use crate::error::{Result, TrainError};
use crate::finetune::{
    Data, Event, FinetuneConfig, RunDir, eval_pipeline, log_metrics, one_hot, predict, seed_for,
    truncate_metrics, write_plots,
};
use crate::hard_negatives::HardNegativeTerm;
use crate::loss_scale::LossScaler;
use crate::metrics::Report;
use crate::optim::{AdamW, AdamWSettings, PendingReport, warmup_cosine};

/// Train `model` as `config` says on `data` in `run` (continuing from the run's
/// checkpoint with `resume`), reporting through `events`; the final validation report.
pub(crate) fn train_loop<M: Family>(
    model: M,
    config: &FinetuneConfig,
    data: &Data,
    run: &RunDir,
    resume: bool,
    device: &Device,
    events: &mut dyn FnMut(Event),
) -> Result<Report> {
    sv_models::precision::ensure_computes(config.precision, device)?;
    let pipeline = Pipeline::load(&config.augment)?;
    let plain = Arc::new(eval_pipeline(&pipeline, config.image_size));
    let mut training = Training::new(&model, config, run, device);
    let mut model = model;
    if resume && run.checkpoint().exists() {
        model = training.resume(model)?;
        events(Event::Resumed {
            position: training.position,
        });
    } else {
        // A fresh run starts a fresh log.
        let _ = std::fs::remove_file(run.metrics());
        let _ = std::fs::remove_file(run.checkpoint());
    }
    atomic_write(&run.config(), training.config_text.as_bytes())?;
    let epochs = Epochs::new(config, data, train_pipeline(pipeline, config.image_size))?;
    training.total = epochs.per_epoch * config.epochs;
    let mut last: Option<(Report, Vec<(f64, bool)>)> = None;
    for epoch in training.position.epoch..config.epochs {
        let failed_before = epochs.batcher.failed();
        model = training.train_epoch(model, &epochs, epoch, events)?;
        let pairs = training.validate(&model, data, plain.clone(), &run.checkpoint())?;
        let report = Report::of(&pairs);
        let left_out = epochs.batcher.failed() - failed_before;
        log_metrics(
            &run.metrics(),
            &serde_json::json!({
                "step": training.position.step, "epoch": epoch, "val": report,
                "train_images_left_out": left_out,
            }),
        )?;
        events(Event::Epoch {
            epoch,
            report: Box::new(report.clone()),
            left_out,
        });
        training.position = Position {
            epoch: epoch + 1,
            batch: 0,
            step: training.position.step,
        };
        training.checkpoint(&model, events)?;
        if crate::stop::requested() && epoch + 1 < config.epochs {
            return Err(training.stopped());
        }
        last = Some((report, pairs));
    }
    training.finish(&model, data, plain, last)
}

/// The training pipeline: the augmentation, then a bicubic resize to the run's side.
fn train_pipeline(mut pipeline: Pipeline, size: u32) -> Arc<Pipeline> {
    pipeline.steps.push(Step::ResizeTo {
        width: size,
        height: size,
        filter: sv_augment::Filter::Bicubic,
    });
    Arc::new(pipeline)
}

/// What one optimizer step gives, its figures still on the device: the loop reads a
/// run of steps back at once ([`Training::flush`]), so the device is not stopped after
/// every step.
struct StepOutcome {
    /// The loss (cross-entropy plus the contrastive term), `[1]`.
    loss: Tensor<1>,
    /// Its cross-entropy part, when the run has the contrastive term.
    ce: Option<Tensor<1>>,
    /// Its contrastive part, when the run has the term.
    contrastive: Option<f64>,
    /// The learning rate of the step.
    lr: f64,
    /// The optimizer's report (gradient norm).
    report: PendingReport,
}

/// A step whose figures are not logged yet.
struct PendingStep {
    step: u64,
    epoch: u64,
    /// The loss scale after the step (f16 runs).
    loss_scale: Option<f32>,
    outcome: StepOutcome,
}

/// Longest the loop goes without reading its steps back (and logging them).
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// Most steps waiting to be read back.
const MOST_PENDING: usize = 64;

/// What every epoch draws its batches from.
struct Epochs {
    sampler: BalancedSampler,
    batcher: Arc<ImageBatcher>,
    dataset: Arc<SampleDataset>,
    /// Training images.
    n: usize,
    /// Steps per epoch.
    per_epoch: u64,
}

impl Epochs {
    fn new(config: &FinetuneConfig, data: &Data, pipeline: Arc<Pipeline>) -> Result<Self> {
        let n = data.train.len();
        let labels: Vec<Label> = data.train.iter().map(|s| s.label).collect();
        Ok(Self {
            sampler: BalancedSampler::new(&labels, config.seed)?,
            batcher: Arc::new(ImageBatcher::augmenting(pipeline, config.seed)),
            dataset: Arc::new(SampleDataset::new(data.train.clone())),
            n,
            per_epoch: n.div_ceil(config.batch_size) as u64,
        })
    }

    /// The order of the training images in `epoch`: class-balanced draws, or a seeded
    /// shuffle.
    fn order(&self, config: &FinetuneConfig, epoch: u64) -> Vec<usize> {
        if config.balanced {
            self.sampler.epoch(epoch, self.n)
        } else {
            let mut idx: Vec<usize> = (0..self.n).collect();
            idx.sort_by_key(|&i| seed_for(config.seed ^ epoch, i as u64));
            idx
        }
    }
}

/// A run in progress: the optimizer of its model, the moving average, the contrastive
/// term and the position. The model itself is passed through each step by value, so an
/// optimizer step updates it without a second copy of the weights.
struct Training<'a, M: Family> {
    config: &'a FinetuneConfig,
    run: &'a RunDir,
    device: &'a Device,
    /// The resolved config as the run directory and every checkpoint record it.
    config_text: String,
    optim: AdamW<ParamGroups>,
    /// The exponential moving average of the parameters, when the run keeps one.
    ema: Option<MovingAverage>,
    term: Option<HardNegativeTerm>,
    /// The loss scale of an f16 run.
    scaler: Option<LossScaler>,
    position: Position,
    /// Steps taken but not yet read back and logged.
    pending: Vec<PendingStep>,
    /// When steps were last read back.
    flushed: std::time::Instant,
    /// Steps in the whole run.
    total: u64,
    family: std::marker::PhantomData<M>,
}

impl<'a, M: Family> Training<'a, M> {
    /// A run at its start: a fresh optimizer over the model's parameter groups.
    fn new(model: &M, config: &'a FinetuneConfig, run: &'a RunDir, device: &'a Device) -> Self {
        let settings = AdamWSettings {
            weight_decay: config.weight_decay,
            layer_decay: config.layer_decay,
            clip: (config.clip > 0.0).then_some(config.clip),
            backbone_scale: config.backbone_lr / config.lr,
            ..AdamWSettings::default()
        };
        Self {
            config,
            run,
            device,
            config_text: config.anchored().to_toml(),
            optim: AdamW::new(settings, model.param_groups()),
            ema: (config.ema > 0.0).then(|| MovingAverage::new(model, config.ema as f32)),
            term: config
                .hard_negatives
                .clone()
                .map(|h| HardNegativeTerm::new(h, config.seed)),
            scaler: (config.precision == Precision::F16).then(LossScaler::new),
            position: Position {
                epoch: 0,
                batch: 0,
                step: 0,
            },
            pending: Vec::new(),
            flushed: std::time::Instant::now(),
            total: 0,
            family: std::marker::PhantomData,
        }
    }

    /// Continue from the run's checkpoint (written by a run with this config): weights,
    /// optimizer moments, moving average, contrastive state and position; the metric log
    /// cut back to that position.
    fn resume(&mut self, model: M) -> Result<M> {
        let path = self.run.checkpoint();
        let ck = Checkpoint::load(&path)?;
        if ck.meta.get("config").map(String::as_str) != Some(self.config_text.as_str()) {
            return Err(TrainError::Checkpoint {
                path,
                reason: "was written by a run with another config; resume with the run's own \
                         config.toml or start a new run directory"
                    .into(),
            });
        }
        if let Some(term) = self.term.as_mut() {
            term.restore(&ck, &path)?;
        }
        if self.scaler.is_some() {
            self.scaler = Some(LossScaler::restore(&ck, &path)?);
        }
        let model = load_params(model, &ck.model, &path)?;
        self.optim.set_moments(ck.moments);
        if self.config.ema > 0.0 {
            let decay = self.config.ema as f32;
            self.ema = Some(MovingAverage::from_values(&ck.ema, decay, self.device));
        }
        self.position = ck.position;
        truncate_metrics(&self.run.metrics(), self.position.step)?;
        Ok(model)
    }

    /// Train the rest of `epoch` (all of it, unless the run resumed inside it).
    fn train_epoch(
        &mut self,
        mut model: M,
        epochs: &Epochs,
        epoch: u64,
        events: &mut dyn FnMut(Event),
    ) -> Result<M> {
        epochs.batcher.set_epoch(epoch);
        let config = self.config;
        let done = if epoch == self.position.epoch {
            self.position.batch
        } else {
            0
        };
        let remaining: Vec<usize> = epochs
            .order(config, epoch)
            .into_iter()
            .skip(done as usize * config.batch_size)
            .collect();
        let mut batch_index = done;
        for batch in epoch_batches(
            epochs.dataset.clone(),
            epochs.batcher.clone(),
            remaining,
            config.batch_size,
            2,
            self.device.clone(),
        ) {
            if batch.ids.is_empty() {
                // No image of the batch could be read: nothing to step on. The batch
                // still counts, so a resumed run skips the same samples.
                batch_index += 1;
                self.position.batch = batch_index;
                continue;
            }
            let (next, outcome) = self.step(model, batch.pixels, &batch.labels, &batch.ids)?;
            model = next;
            self.update_ema(&model);
            self.position.step += 1;
            batch_index += 1;
            self.position.batch = batch_index;
            self.pending.push(PendingStep {
                step: self.position.step,
                epoch,
                loss_scale: self.scaler.as_ref().map(LossScaler::scale),
                outcome,
            });
            let stop = crate::stop::requested();
            let checkpoint = stop
                || (self.position.step.is_multiple_of(config.checkpoint_every)
                    && batch_index < epochs.per_epoch);
            if checkpoint
                || self.pending.len() >= MOST_PENDING
                || self.flushed.elapsed() >= FLUSH_EVERY
            {
                self.flush(events)?;
            }
            if checkpoint {
                self.checkpoint(&model, events)?;
            }
            if stop {
                return Err(self.stopped());
            }
        }
        self.flush(events)?;
        Ok(model)
    }

    /// Read the pending steps back from the device (waiting for them to finish), log
    /// them and report them, in order.
    fn flush(&mut self, events: &mut dyn FnMut(Event)) -> Result<()> {
        for pending in std::mem::take(&mut self.pending) {
            let StepOutcome {
                loss,
                ce,
                contrastive,
                lr,
                report,
            } = pending.outcome;
            let loss = f64::from(loss.into_scalar::<f32>());
            let report = report.read();
            let mut line = serde_json::json!({
                "step": pending.step, "epoch": pending.epoch, "loss": loss, "lr": lr,
                "grad_norm": report.grad_norm,
            });
            if let Some(scale) = pending.loss_scale {
                line["loss_scale"] = scale.into();
            }
            if report.skipped {
                line["skipped"] = true.into();
            }
            if let (Some(c), Some(ce)) = (contrastive, ce) {
                line["ce"] = f64::from(ce.into_scalar::<f32>()).into();
                line["contrastive"] = c.into();
            }
            log_metrics(&self.run.metrics(), &line)?;
            events(Event::Step {
                step: pending.step,
                total: self.total,
                loss,
                lr,
            });
        }
        self.flushed = std::time::Instant::now();
        Ok(())
    }

    /// One optimizer step on a batch: cross-entropy (plus the contrastive term, when
    /// the run has one), backward, AdamW at the scheduled learning rate. Gives the
    /// updated model.
    fn step(
        &mut self,
        model: M,
        pixels: Tensor<4>,
        targets: &[f32],
        ids: &[String],
    ) -> Result<(M, StepOutcome)> {
        let config = self.config;
        // Drop path draws from the device's generator: seed it per step so a resumed
        // run draws what the uninterrupted one did.
        self.device.seed(seed_for(config.seed, self.position.step));
        let b = ids.len();
        let onehot = one_hot(targets, self.device);
        // The forward pass on the weights cast to the run's precision: the casts are on
        // the graph, so the gradients come back to the f32 weights. Logits and features
        // come out in f32.
        let forward = in_precision(model.clone(), config.precision);
        let (features, logits) = match self.term {
            Some(_) => {
                let (f, l) = forward.features_logits(pixels);
                (Some(f), l)
            }
            None => (None, forward.logits(pixels)),
        };
        drop(forward);
        let mut loss = (log_softmax(logits, 1) * onehot)
            .sum()
            .div_scalar(-(b.max(1) as f32));
        // The contrastive term's runs log the cross-entropy part on its own.
        let ce = self.term.is_some().then(|| loss.clone().inner());
        let mut contrastive = None;
        if let (Some(term), Some(features)) = (self.term.as_mut(), features) {
            let labels: Vec<u8> = targets.iter().map(|t| u8::from(*t > 0.5)).collect();
            let part = term.step(features, &labels, ids, self.position.step)?;
            loss = loss + part.loss;
            contrastive = Some(part.value);
        }
        let loss_value = loss.clone().inner();
        let loss_scale = self.scaler.as_ref().map_or(1.0, LossScaler::scale);
        let grads = if loss_scale == 1.0 {
            loss.backward()
        } else {
            loss.mul_scalar(loss_scale).backward()
        };
        let lr = warmup_cosine(
            self.position.step,
            config.warmup_steps,
            self.total,
            config.lr,
            config.lr * config.min_lr_ratio,
        );
        let (next, report) = self.optim.step_pending(model, lr, &grads, loss_scale);
        if let Some(scaler) = self.scaler.as_mut() {
            scaler.update(!report.skipped());
        }
        let outcome = StepOutcome {
            loss: loss_value,
            ce,
            contrastive,
            lr,
            report,
        };
        Ok((next, outcome))
    }

    /// Move the moving average towards the current parameters (on their device).
    fn update_ema(&mut self, model: &M) {
        if let Some(avg) = self.ema.as_mut() {
            avg.update(model);
        }
    }

    /// The model evaluated, in the run's precision: the moving average when the run
    /// keeps one (read as if from `source`, for errors), else the current weights.
    fn evaluated(&self, model: &M, source: &std::path::Path) -> Result<M> {
        let weights = match &self.ema {
            Some(avg) => load_params(model.valid(), &avg.values(), source)?,
            None => model.valid(),
        };
        Ok(in_precision(weights, self.config.precision))
    }

    /// Roadwork probabilities and labels of the validation split.
    fn validate(
        &self,
        model: &M,
        data: &Data,
        plain: Arc<Pipeline>,
        source: &std::path::Path,
    ) -> Result<Vec<(f64, bool)>> {
        predict(
            &self.evaluated(model, source)?,
            &data.val,
            plain,
            self.config.batch_size,
            &self.device.clone().inner(),
        )
    }

    /// The error of a run stopped at its position (its checkpoint written).
    fn stopped(&self) -> TrainError {
        TrainError::Stopped {
            step: self.position.step,
            epoch: self.position.epoch,
            batch: self.position.batch,
            checkpoint: self.run.checkpoint(),
        }
    }

    /// Write the run's checkpoint at its position (atomically).
    fn checkpoint(&self, model: &M, events: &mut dyn FnMut(Event)) -> Result<()> {
        let mut meta = std::collections::BTreeMap::new();
        meta.insert("config".to_string(), self.config_text.clone());
        let mut ck = Checkpoint {
            model: params_of(model),
            moments: self.optim.moments(),
            ema: self
                .ema
                .as_ref()
                .map(MovingAverage::values)
                .unwrap_or_default(),
            extra: Default::default(),
            position: self.position,
            meta,
        };
        if let Some(term) = &self.term {
            term.save_into(&mut ck);
        }
        if let Some(scaler) = &self.scaler {
            scaler.save_into(&mut ck);
        }
        ck.save(&self.run.checkpoint())?;
        events(Event::Checkpoint {
            path: self.run.checkpoint(),
            position: self.position,
        });
        Ok(())
    }

    /// Save the final weights (the moving average, when kept), `eval.json` with the last
    /// validation (validating now when no epoch ran) and the plots.
    fn finish(
        self,
        model: &M,
        data: &Data,
        plain: Arc<Pipeline>,
        last: Option<(Report, Vec<(f64, bool)>)>,
    ) -> Result<Report> {
        let run = self.run;
        let final_ck = Checkpoint {
            model: self
                .ema
                .as_ref()
                .map_or_else(|| params_of(model), MovingAverage::values),
            moments: Default::default(),
            ema: Default::default(),
            extra: Default::default(),
            position: self.position,
            meta: [("config".to_string(), self.config_text.clone())].into(),
        };
        final_ck.save(&run.model())?;
        let (report, pairs) = match last {
            Some(last) => last,
            None => (
                Report::of(&self.validate(model, data, plain, &run.model())?),
                Vec::new(),
            ),
        };
        atomic_write(
            &run.eval(),
            serde_json::to_string_pretty(&report)
                .expect("serialisable")
                .as_bytes(),
        )?;
        write_plots(run, &report, &pairs)?;
        Ok(report)
    }
}

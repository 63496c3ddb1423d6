//! The training loop (SPEC.md §5): chronological windows, training-split z-scoring, shuffled
//! mini-batches from a seeded host generator, ASAM (or SAM, or none) over SGD with momentum and
//! no dampening (or Adam), weight decay, cosine annealing per step, MSE over the horizon, and
//! early stopping on the validation split's median NRMSE with the best model kept.
//!
//! Not yet here: checkpoints and resume, the bio mechanisms, the command line.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer, Sgd, SgdConfig};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::asam::{Sharpness, gradients};
use super::schedule::cosine_lr;
use crate::data::Dataset;
use crate::data::normalize::Normalizer;
use crate::data::window::{SplitFractions, WindowSpec, chronological_split, chronological_windows};
use crate::error::{Error, Result, ensure_non_negative, ensure_positive};
use crate::metrics::{VPT_THRESHOLD, evaluate};
use crate::models::{Model, ModelConfig};

/// The base optimizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with momentum (no dampening, PyTorch semantics).
    Sgd,
    /// Adam (ε = 1e-8, PyTorch's default).
    Adam,
}

/// Everything a training run needs besides the data.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The model.
    pub model: ModelConfig,
    /// Input steps L (default 150).
    pub lookback: usize,
    /// Distance between window starts (default 1).
    pub stride: usize,
    /// Windows per batch (default 256).
    pub batch_size: usize,
    /// Maximum epochs (default 400).
    pub epochs: usize,
    /// Initial learning rate (default 0.1).
    pub lr: f64,
    /// Learning rate at the end of the cosine schedule (default 0).
    pub lr_min: f64,
    /// Base optimizer (default SGD).
    pub optimizer: OptimizerKind,
    /// SGD momentum (default 0.9, no dampening).
    pub momentum: f64,
    /// L2 weight decay on every parameter (default 5e-4).
    pub weight_decay: f64,
    /// Sharpness-aware scheme (default ASAM, ρ = 1, η = 0.01).
    pub sharpness: Sharpness,
    /// Epochs without a better validation NRMSE before stopping (default 20).
    pub patience: usize,
    /// Seed of shuffling (the model's own seed initialises its weights).
    pub seed: u64,
}

impl TrainConfig {
    /// SPEC.md §5's defaults around a model.
    pub fn new(model: ModelConfig) -> Self {
        Self {
            model,
            lookback: crate::data::window::DEFAULT_LOOKBACK,
            stride: 1,
            batch_size: 256,
            epochs: 400,
            lr: 0.1,
            lr_min: 0.0,
            optimizer: OptimizerKind::Sgd,
            momentum: 0.9,
            weight_decay: 5e-4,
            sharpness: Sharpness::default(),
            patience: 20,
            seed: 0,
        }
    }

    /// The window geometry.
    pub fn windows(&self) -> WindowSpec {
        WindowSpec {
            lookback: self.lookback,
            horizon: self.model.horizon(),
            stride: self.stride,
        }
    }

    /// Checks every field; returns the first bad one.
    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        self.windows().validate()?;
        crate::error::ensure_counts(&[("batch_size", self.batch_size), ("epochs", self.epochs)])?;
        ensure_positive("lr", self.lr)?;
        ensure_non_negative("lr_min", self.lr_min)?;
        ensure_non_negative("momentum", self.momentum)?;
        ensure_non_negative("weight_decay", self.weight_decay)?;
        Ok(())
    }
}

/// One epoch's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss (MSE on z-scored values, at the unperturbed weights).
    pub train_loss: f64,
    /// Validation MSE on z-scored values.
    pub val_loss: f64,
    /// Validation median NRMSE on de-normalised values.
    pub val_nrmse: f64,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Wall time of the epoch.
    pub seconds: f64,
}

/// Receives progress; the library never prints.
pub trait Observer<B: AutodiffBackend> {
    /// Called after every epoch with the history so far, the maximum epoch count, and the model
    /// when this epoch's validation NRMSE is the best yet (to checkpoint it). An error stops the
    /// run.
    fn epoch_done(
        &mut self,
        _history: &[EpochMetrics],
        _epochs: usize,
        _improved: Option<&Model<B>>,
    ) -> Result<()> {
        Ok(())
    }
}

/// An observer that ignores everything.
pub struct Silent;

impl<B: AutodiffBackend> Observer<B> for Silent {}

/// The result of a run.
pub struct TrainOutcome<B: AutodiffBackend> {
    /// The model with the best validation NRMSE.
    pub best: Model<B>,
    /// Its epoch (1-based).
    pub best_epoch: usize,
    /// Every epoch's numbers.
    pub history: Vec<EpochMetrics>,
    /// The training split's statistics the model sees its inputs through.
    pub normalizer: Normalizer,
}

/// A z-scored series cut into forecast windows: batches for training, forecasts for scoring.
pub struct ScaledWindows {
    values: Vec<f32>,
    vars: usize,
    spec: WindowSpec,
}

impl ScaledWindows {
    /// z-scores `data` with `normalizer` (as `f32`, what the models read).
    pub fn new(data: &Dataset, normalizer: &Normalizer, spec: WindowSpec) -> Self {
        let mut scaled = data.values.clone();
        normalizer.normalize(&mut scaled);
        Self {
            values: scaled.iter().map(|v| *v as f32).collect(),
            vars: data.vars(),
            spec,
        }
    }

    /// The model's z-scored forecasts for the windows at `starts`, row-major
    /// (`starts.len() × horizon × vars`), computed `batch_size` windows at a time.
    pub fn forecast<B: Backend>(
        &self,
        model: &Model<B>,
        starts: &[usize],
        batch_size: usize,
        device: &B::Device,
    ) -> Result<Vec<f64>> {
        let mut preds = Vec::with_capacity(starts.len() * self.spec.horizon * self.vars);
        for batch in starts.chunks(batch_size) {
            let (x, _) = self.batch::<B>(batch, device);
            let p = model
                .forward(x)
                .into_data()
                .convert::<f64>()
                .to_vec::<f64>();
            preds.extend(p.map_err(|e| {
                Error::config("model output", format!("could not be read back ({e:?})"))
            })?);
        }
        Ok(preds)
    }

    /// The z-scored targets of the windows at `starts`, row-major.
    fn targets(&self, starts: &[usize]) -> Vec<f64> {
        let (l, h, d) = (self.spec.lookback, self.spec.horizon, self.vars);
        starts
            .iter()
            .flat_map(|&s| &self.values[(s + l) * d..(s + l + h) * d])
            .map(|v| f64::from(*v))
            .collect()
    }

    /// Inputs `[n, L, D]` and targets `[n, H, D]` for the windows at `starts`.
    fn batch<B: Backend>(
        &self,
        starts: &[usize],
        device: &B::Device,
    ) -> (Tensor<B, 3>, Tensor<B, 3>) {
        let (l, h, d) = (self.spec.lookback, self.spec.horizon, self.vars);
        let mut x = Vec::with_capacity(starts.len() * l * d);
        let mut y = Vec::with_capacity(starts.len() * h * d);
        for &s in starts {
            x.extend_from_slice(&self.values[s * d..(s + l) * d]);
            y.extend_from_slice(&self.values[(s + l) * d..(s + l + h) * d]);
        }
        (
            Tensor::from_data(TensorData::new(x, [starts.len(), l, d]), device),
            Tensor::from_data(TensorData::new(y, [starts.len(), h, d]), device),
        )
    }
}

enum Optim<B: AutodiffBackend> {
    Sgd(OptimizerAdaptor<Sgd<B::InnerBackend>, Model<B>, B>),
    Adam(OptimizerAdaptor<Adam, Model<B>, B>),
}

impl<B: AutodiffBackend> Optim<B> {
    fn new(cfg: &TrainConfig) -> Self {
        let decay =
            (cfg.weight_decay > 0.0).then(|| WeightDecayConfig::new(cfg.weight_decay as f32));
        match cfg.optimizer {
            OptimizerKind::Sgd => Optim::Sgd(
                SgdConfig::new()
                    .with_momentum((cfg.momentum > 0.0).then(|| {
                        MomentumConfig::new()
                            .with_momentum(cfg.momentum)
                            .with_dampening(0.0)
                    }))
                    .with_weight_decay(decay)
                    .init(),
            ),
            OptimizerKind::Adam => Optim::Adam(
                AdamConfig::new()
                    .with_epsilon(1e-8)
                    .with_weight_decay(decay)
                    .init(),
            ),
        }
    }

    fn step(&mut self, lr: f64, model: Model<B>, grads: GradientsParams) -> Model<B> {
        match self {
            Optim::Sgd(o) => o.step(lr, model, grads),
            Optim::Adam(o) => o.step(lr, model, grads),
        }
    }
}

/// Trains `cfg.model` on `data` (all its variables) and returns the best model by validation NRMSE.
pub fn train<B: AutodiffBackend>(
    cfg: &TrainConfig,
    data: &Dataset,
    device: &B::Device,
    observer: &mut dyn Observer<B>,
) -> Result<TrainOutcome<B>> {
    cfg.validate()?;
    let vars = data.vars();
    if cfg.model.vars() != vars {
        return Err(Error::ShapeMismatch {
            what: "model variables and dataset columns".into(),
            expected: cfg.model.vars().to_string(),
            got: vars.to_string(),
        });
    }
    let spec = cfg.windows();
    let fractions = SplitFractions::default();
    let sets = chronological_windows(data.len(), spec, fractions)?;
    let normalizer = training_normalizer(data)?;
    let windows = ScaledWindows::new(data, &normalizer, spec);

    let mut model = cfg.model.init::<B>(device)?;
    let mut optim = Optim::<B>::new(cfg);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let steps_per_epoch = sets.train.len().div_ceil(cfg.batch_size);
    let total_steps = cfg.epochs * steps_per_epoch;
    let mut order = sets.train.clone();
    let mut history = Vec::new();
    let mut best: Option<(f64, usize, Model<B>)> = None;
    for epoch in 1..=cfg.epochs {
        let start = Instant::now();
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        let mut lr = cfg.lr;
        for (i, batch) in order.chunks(cfg.batch_size).enumerate() {
            let step = (epoch - 1) * steps_per_epoch + i;
            lr = cosine_lr(cfg.lr, cfg.lr_min, step, total_steps);
            let (x, y) = windows.batch::<B>(batch, device);
            let (loss, grads) = gradients(&model, cfg.sharpness, |m: &Model<B>| {
                (m.forward(x.clone()) - y.clone()).square().mean()
            });
            if !loss.is_finite() {
                return Err(Error::NonFinite {
                    what: "the training loss".into(),
                    at: format!("epoch {epoch}, step {} of the epoch", i + 1),
                });
            }
            loss_sum += loss * batch.len() as f64;
            model = optim.step(lr, model, grads);
        }
        let (val_loss, val_nrmse) = validate(
            &model.valid(),
            &windows,
            &sets.val,
            &normalizer,
            cfg.batch_size,
            device,
        )?;
        let metrics = EpochMetrics {
            epoch,
            train_loss: loss_sum / sets.train.len() as f64,
            val_loss,
            val_nrmse,
            lr,
            seconds: start.elapsed().as_secs_f64(),
        };
        history.push(metrics);
        let improved = best.as_ref().is_none_or(|(b, _, _)| val_nrmse < *b);
        if improved {
            best = Some((val_nrmse, epoch, model.clone()));
        }
        observer.epoch_done(&history, cfg.epochs, improved.then_some(&model))?;
        if best
            .as_ref()
            .is_some_and(|(_, e, _)| epoch - e >= cfg.patience)
        {
            break;
        }
    }
    let (_, best_epoch, best) = best.expect("at least one epoch should have run");
    Ok(TrainOutcome {
        best,
        best_epoch,
        history,
        normalizer,
    })
}

/// The z-score statistics of the dataset's training split (the first 80 %).
pub fn training_normalizer(data: &Dataset) -> Result<Normalizer> {
    let vars = data.vars();
    let [rows, _, _] = chronological_split(data.len(), SplitFractions::default())?;
    Normalizer::fit(&data.values[rows.start * vars..rows.end * vars], vars)
}

/// Validation MSE (z-scored) and median NRMSE (de-normalised) over `starts`.
fn validate<B: Backend>(
    model: &Model<B>,
    windows: &ScaledWindows,
    starts: &[usize],
    normalizer: &Normalizer,
    batch_size: usize,
    device: &B::Device,
) -> Result<(f64, f64)> {
    let mut preds = windows.forecast(model, starts, batch_size, device)?;
    let mut truths = windows.targets(starts);
    let mse = preds
        .iter()
        .zip(&truths)
        .map(|(a, b)| (a - b).powi(2))
        .sum::<f64>()
        / preds.len() as f64;
    normalizer.denormalize(&mut preds);
    normalizer.denormalize(&mut truths);
    let report = evaluate(
        &preds,
        &truths,
        windows.spec.horizon,
        &normalizer.std,
        VPT_THRESHOLD,
        None,
    )?;
    Ok((mse, report.nrmse_median))
}

//! The training loop (SPEC.md §5): chronological windows, training-split z-scoring, shuffled
//! mini-batches from a seeded host generator, ASAM (or SAM, or none) over SGD with momentum and
//! no dampening (or Adam), weight decay, cosine annealing per step, MSE over the horizon, and
//! early stopping on the validation split's median NRMSE with the best model kept. Validation
//! scores what `eval` scores: for the autoregressive models, closed-loop forecasts.
//!
//! Beyond the paper's protocol: Gaussian input noise (on what a model reads, never on the
//! targets), gradient-norm clipping over all parameters ([`super::clip`]), a loss over the whole
//! window for the autoregressive LSTM/GRU (one-step forecasts of every lookback step, warm-up
//! included), and closed-loop fine-tuning (the last epochs free running with bounded
//! backpropagation through the rollout).
//!
//! Every epoch ends with a [`TrainState`] (the model, the optimizer's state, the history and the
//! best model) handed to the [`Observer`], which may checkpoint it; [`resume`] continues from one.
//! Each epoch's shuffle and the backend's random stream are seeded from (seed, epoch) alone and
//! the learning rate is a function of the step, so a resumed run repeats the uninterrupted one.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer, Sgd, SgdConfig};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use super::asam::{Sharpness, gradients};
use super::clip::clip_gradients;
use super::schedule::{LrSchedule, cosine_lr, plateau_lr};
use super::strategy::Strategy;
use crate::bio::coverage::Coverage;
use crate::bio::fuzzy::{FuzzyFactors, scale_gradients};
use crate::bio::rejuvenate::rejuvenate_model;
use crate::bio::{BioConfig, split};
use crate::data::Dataset;
use crate::data::normalize::Normalizer;
use crate::data::window::{Split, SplitFractions, WindowSpec, split_rows, split_windows};
use crate::error::{Error, Result, ensure_non_negative, ensure_positive};
use crate::metrics::{VPT_THRESHOLD, evaluate};
use crate::models::{Decoder, Feed, Model, ModelConfig, ModelKind, Preset, Teacher};

/// The Adam learning rate of the default and small presets.
pub const SMALL_ADAM_LR: f64 = 3e-3;

/// The default preset's input noise (z-units) for the autoregressive models.
pub const DEFAULT_INPUT_NOISE: f64 = 0.01;

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
    /// Learning rate at the end of the cosine schedule, and the floor of the plateau schedule
    /// (default 0).
    pub lr_min: f64,
    /// How the learning rate moves (default: cosine annealing per step).
    #[serde(default)]
    pub schedule: LrSchedule,
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
    /// Seed of shuffling, fuzzy factors and rejuvenation draws (the model's own seed
    /// initialises its weights).
    pub seed: u64,
    /// The synaptic-diversity mechanisms (default none).
    #[serde(default)]
    pub bio: BioConfig,
    /// How the autoregressive decoder is taught (default: the decreasing inverse-sigmoid
    /// curriculum); only for models with that decoder.
    #[serde(default)]
    pub strategy: Strategy,
    /// Standard deviation (z-units) of Gaussian noise added in training to every true value a
    /// model reads — the window and the teacher-forced decoder inputs, never the targets
    /// (default 0: none).
    #[serde(default)]
    pub input_noise: f64,
    /// Clip the gradients' joint L2 norm to this value before each update (default: no clipping).
    #[serde(default)]
    pub clip_grad: Option<f64>,
    /// The autoregressive LSTM/GRU's loss also covers the one-step forecasts of every step
    /// inside the lookback window, warm-up steps included (default false).
    #[serde(default)]
    pub window_loss: bool,
    /// Closed-loop fine-tuning of an autoregressive model: the last `epochs` epochs train free
    /// running over the horizon, backpropagating through at most `bptt` fed-back steps
    /// (default: none).
    #[serde(default)]
    pub closed_loop: Option<ClosedLoop>,
    /// How the dataset is split into train, validation and test: each trajectory
    /// chronologically (default), or by whole trajectories. Left out of config.json when
    /// default, so runs and `compare` cell keys from before the choice stay the same.
    #[serde(default, skip_serializing_if = "Split::is_default")]
    pub split: Split,
}

/// Closed-loop fine-tuning (see [`TrainConfig::closed_loop`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClosedLoop {
    /// The run's last epochs that train free running.
    pub epochs: usize,
    /// Backpropagation through the rollout spans at most this many steps (the horizon: all).
    pub bptt: usize,
}

impl TrainConfig {
    /// SPEC.md §5's defaults around a model; the windows' lookback is the model's own where it
    /// has one (the FDN's), else the default 150.
    pub fn new(model: ModelConfig) -> Self {
        Self {
            lookback: model
                .lookback()
                .unwrap_or(crate::data::window::DEFAULT_LOOKBACK),
            model,
            stride: 1,
            batch_size: 256,
            epochs: 400,
            lr: 0.1,
            lr_min: 0.0,
            schedule: LrSchedule::Cosine,
            optimizer: OptimizerKind::Sgd,
            momentum: 0.9,
            weight_decay: 5e-4,
            sharpness: Sharpness::default(),
            patience: 20,
            seed: 0,
            bio: BioConfig::default(),
            strategy: Strategy::default(),
            input_noise: 0.0,
            clip_grad: None,
            window_loss: false,
            closed_loop: None,
            split: Split::Chronological,
        }
    }

    /// A preset with the preset's own decoder (see [`Self::preset_for`]).
    pub fn preset(
        kind: ModelKind,
        preset: Preset,
        vars: usize,
        lookback: usize,
        horizon: usize,
    ) -> Self {
        Self::preset_for(kind, preset, None, vars, lookback, horizon)
            .expect("every model has its preset's own decoder")
    }

    /// The recipe of `preset` for a model of `kind`, with `decoder` (`None`: the preset's own):
    ///
    /// - `default`, what `chaoscast train` uses without `--preset`, the recipe that converges on
    ///   a 2-core CPU: Adam at 3e-3 without weight decay, cosine annealing, gradient-norm
    ///   clipping at 1, batch 64, no SAM (ASAM stalls the autoregressive decoder, and at these
    ///   settings helps no model it was tried on: docs/results/asam-rho-thomas), the best epoch by the validation
    ///   NRMSE of closed-loop forecasts (what `eval` scores). Every neural model has the
    ///   autoregressive decoder taught one step ahead (teacher forcing) with input noise 0.01:
    ///   LSTM and GRU (width 128) over the whole window, warm-up steps included, on windows 5
    ///   steps apart for 280 epochs; the transformer (the small size) on every window for 200
    ///   epochs; the FDN (32 channels, the variables together) on every window for 80. With
    ///   `Decoder::Direct` the same optimizer trains the direct heads for 100 epochs, the FDN's
    ///   forecasting the change from the last value.
    /// - `small`, sized for quick runs: width 32, Adam at 3e-3 without weight decay, batch 64,
    ///   15 epochs, ASAM (none for the autoregressive decoder, which it stalls), direct heads.
    /// - `paper`, SPEC.md §5 exactly: SGD 0.1 with momentum 0.9, weight decay 5e-4, ASAM ρ = 1,
    ///   batch 256, 400 epochs, the direct head.
    ///
    /// Weight decay belongs to the paper protocol: coupled L2 under Adam ruins the fit here (a
    /// PyTorch GRU falls from NRMSE 0.11 to 0.61 with 5e-4).
    pub fn preset_for(
        kind: ModelKind,
        preset: Preset,
        decoder: Option<Decoder>,
        vars: usize,
        lookback: usize,
        horizon: usize,
    ) -> Result<Self> {
        let mut cfg = Self::new(ModelConfig::preset(kind, preset, vars, lookback, horizon));
        cfg.lookback = lookback;
        if kind == ModelKind::Esn {
            if decoder == Some(Decoder::Autoregressive) {
                return Err(Error::config(
                    "decoder",
                    "the ESN forecasts closed loop already; the decoder is for lstm, gru, fdn and transformer",
                ));
            }
            // Fitted in closed form in one pass; the optimizer settings are never used.
            cfg.epochs = 1;
            return Ok(cfg);
        }
        let recurrent = matches!(kind, ModelKind::Lstm | ModelKind::Gru);
        let own = if preset == Preset::Default {
            Decoder::Autoregressive
        } else {
            Decoder::Direct
        };
        let decoder = decoder.unwrap_or(own);
        match (&mut cfg.model, decoder) {
            (_, Decoder::Direct) => {}
            (ModelConfig::Recurrent(c), d) => c.decoder = Some(d),
            (ModelConfig::Transformer(c), d) => c.decoder = Some(d),
            (ModelConfig::Fdn(c), d) => c.decoder = Some(d),
            (ModelConfig::Esn(_), _) => unreachable!("the ESN returned above"),
        }
        let autoregressive = decoder == Decoder::Autoregressive;
        if autoregressive {
            // ASAM at ρ = 1 keeps the decoder at its first epoch (docs/results/strategies-thomas).
            cfg.sharpness = Sharpness::None;
        }
        if preset == Preset::Paper {
            return Ok(cfg);
        }
        cfg.optimizer = OptimizerKind::Adam;
        cfg.lr = SMALL_ADAM_LR;
        cfg.weight_decay = 0.0;
        cfg.batch_size = 64;
        if preset == Preset::Small {
            cfg.epochs = 15;
            return Ok(cfg);
        }
        cfg.sharpness = Sharpness::None;
        cfg.clip_grad = Some(1.0);
        match (autoregressive, recurrent) {
            (true, true) => {
                cfg.strategy = Strategy::named("teacher-forcing")?;
                cfg.window_loss = true;
                cfg.input_noise = DEFAULT_INPUT_NOISE;
                cfg.stride = 5;
                cfg.epochs = 280;
                cfg.patience = 280;
            }
            (true, false) => {
                // Teacher forcing of a sliding window is one-step training: one pass per window.
                cfg.strategy = Strategy::named("teacher-forcing")?;
                cfg.input_noise = DEFAULT_INPUT_NOISE;
                cfg.epochs = 200;
                if let ModelConfig::Fdn(c) = &mut cfg.model {
                    // Channel independence cannot learn the one-step map well enough to run
                    // closed loop (validation NRMSE 0.47 after 40 epochs against 0.063 with the
                    // variables together; docs/results/quality-thomas/README.md).
                    c.mixing = Some(true);
                    cfg.epochs = 80;
                }
                cfg.patience = cfg.epochs;
            }
            (false, _) => {
                if let ModelConfig::Fdn(c) = &mut cfg.model {
                    c.residual = Some(true);
                }
                cfg.epochs = 100;
                cfg.patience = 100;
            }
        }
        Ok(cfg)
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
        if let Some(own) = self.model.lookback()
            && own != self.lookback
        {
            return Err(Error::config(
                "lookback",
                format!(
                    "the {} is built for windows of {own} steps but the training windows have {}; \
                     give both the same lookback",
                    self.model.name().to_uppercase(),
                    self.lookback
                ),
            ));
        }
        if let ModelConfig::Transformer(t) = &self.model
            && t.patch > self.lookback
        {
            return Err(Error::config(
                "patch",
                format!(
                    "{} steps per token exceed the lookback of {}",
                    t.patch, self.lookback
                ),
            ));
        }
        if matches!(self.model, ModelConfig::Esn(_)) && self.bio.is_active() {
            return Err(Error::config(
                "bio",
                "the mechanisms act on gradient training, and the ESN's readout is fitted in \
                 closed form; train the ESN without --bio",
            ));
        }
        if matches!(self.model, ModelConfig::Esn(_)) {
            for (field, set) in [
                ("input_noise", self.input_noise > 0.0),
                ("clip_grad", self.clip_grad.is_some()),
                ("schedule", self.schedule != LrSchedule::Cosine),
            ] {
                if set {
                    return Err(Error::config(
                        field,
                        "it shapes gradient training, and the ESN's readout is fitted in closed \
                         form; leave it out for the ESN",
                    ));
                }
            }
        }
        crate::error::ensure_counts(&[("batch_size", self.batch_size), ("epochs", self.epochs)])?;
        ensure_positive("lr", self.lr)?;
        ensure_non_negative("lr_min", self.lr_min)?;
        ensure_non_negative("momentum", self.momentum)?;
        ensure_non_negative("weight_decay", self.weight_decay)?;
        self.bio.validate()?;
        self.strategy.validate()?;
        ensure_non_negative("input_noise", self.input_noise)?;
        if let LrSchedule::Plateau { factor, patience } = self.schedule {
            if !(factor > 0.0 && factor < 1.0) {
                return Err(Error::config(
                    "plateau factor",
                    format!("a plateau multiplies the rate by a factor in (0, 1), got {factor}"),
                ));
            }
            crate::error::ensure_counts(&[("plateau patience", patience)])?;
        }
        if let Some(c) = self.clip_grad {
            ensure_positive("clip_grad", c)?;
        }
        if self.window_loss
            && !matches!(&self.model, ModelConfig::Recurrent(c) if c.is_autoregressive())
        {
            return Err(Error::config(
                "window_loss",
                "a loss over the window needs one-step forecasts inside it, which only the \
                 autoregressive LSTM and GRU make",
            ));
        }
        if let Some(c) = &self.closed_loop {
            if !self.model.is_autoregressive() {
                return Err(Error::config(
                    "closed_loop",
                    "closed-loop fine-tuning trains the autoregressive decoder; use it \
                     (--decoder autoregressive with lstm, gru, fdn or transformer)",
                ));
            }
            crate::error::ensure_counts(&[
                ("closed_loop epochs", c.epochs),
                ("closed_loop bptt", c.bptt),
            ])?;
            if c.epochs > self.epochs {
                return Err(Error::config(
                    "closed_loop epochs",
                    format!(
                        "{} fine-tuning epochs exceed the run's {} epochs",
                        c.epochs, self.epochs
                    ),
                ));
            }
        }
        if !self.model.is_autoregressive() && self.strategy != Strategy::default() {
            return Err(Error::config(
                "strategy",
                "teacher-forcing strategies train the autoregressive decoder; use it \
                 (--decoder autoregressive with lstm, gru, fdn or transformer) or leave the strategy out",
            ));
        }
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
    /// Weights re-drawn by rejuvenation during the epoch.
    #[serde(default)]
    pub rejuvenated: usize,
}

/// Receives progress; the library never prints.
pub trait Observer<B: AutodiffBackend> {
    /// Called after every optimizer step: 1-based epoch, 0-based step within it, steps per
    /// epoch, and the step's training loss.
    fn step_done(&mut self, _epoch: usize, _step: usize, _steps: usize, _loss: f64) {}

    /// Called after every epoch with everything a checkpoint needs, the maximum epoch count, and
    /// whether this epoch's validation NRMSE is the best yet. An error stops the run.
    fn epoch_done(
        &mut self,
        _state: &TrainState<B>,
        _epochs: usize,
        _improved: bool,
    ) -> Result<()> {
        Ok(())
    }
}

/// Where a run stands after a completed epoch: enough to resume it exactly.
#[derive(Clone)]
pub struct TrainState<B: AutodiffBackend> {
    /// The model after the last completed epoch.
    pub model: Model<B>,
    /// The base optimizer's state (momentum or Adam moments), keyed by parameter id.
    pub optimizer: OptimizerState<B>,
    /// Every completed epoch's numbers.
    pub history: Vec<EpochMetrics>,
    /// The model with the best validation NRMSE so far.
    pub best: Model<B>,
    /// Its epoch (1-based).
    pub best_epoch: usize,
    /// The training split's statistics the model sees its inputs through.
    pub normalizer: Normalizer,
    /// The fuzzy learning-rate factors, when that mechanism is on.
    pub fuzzy: Option<FuzzyFactors>,
}

impl<B: AutodiffBackend> TrainState<B> {
    /// Completed epochs.
    pub fn epoch(&self) -> usize {
        self.history.len()
    }

    /// The best validation NRMSE so far.
    pub fn best_nrmse(&self) -> f64 {
        self.history[self.best_epoch - 1].val_nrmse
    }
}

type SgdOptim<B> = OptimizerAdaptor<Sgd<<B as AutodiffBackend>::InnerBackend>, Model<B>, B>;
type AdamOptim<B> = OptimizerAdaptor<Adam, Model<B>, B>;

/// The base optimizer's state.
#[derive(Clone)]
pub enum OptimizerState<B: AutodiffBackend> {
    /// SGD's momentum buffers.
    Sgd(<SgdOptim<B> as Optimizer<Model<B>, B>>::Record),
    /// Adam's moments.
    Adam(<AdamOptim<B> as Optimizer<Model<B>, B>>::Record),
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

/// A model output as `f64` values, row-major.
pub(crate) fn read_back<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f64>> {
    t.into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .map_err(|e| Error::config("model output", format!("could not be read back ({e:?})")))
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
            preds.extend(read_back(model.forward(x))?);
        }
        Ok(preds)
    }

    /// Closed-loop forecasts of `steps` rows for the windows at `starts` (z-scored, row-major,
    /// `starts.len() × steps × vars`; see [`Model::rollout`]).
    pub fn rollout<B: Backend>(
        &self,
        model: &Model<B>,
        starts: &[usize],
        steps: usize,
        batch_size: usize,
        device: &B::Device,
    ) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(starts.len() * steps * self.vars);
        for batch in starts.chunks(batch_size) {
            let (x, _) = self.batch::<B>(batch, device);
            out.extend(read_back(model.rollout(x, steps))?);
        }
        Ok(out)
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
    Sgd(SgdOptim<B>),
    Adam(AdamOptim<B>),
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

    fn state(&self) -> OptimizerState<B> {
        match self {
            Optim::Sgd(o) => OptimizerState::Sgd(o.to_record()),
            Optim::Adam(o) => OptimizerState::Adam(o.to_record()),
        }
    }

    fn restore(self, state: OptimizerState<B>) -> Result<Self> {
        match (self, state) {
            (Optim::Sgd(o), OptimizerState::Sgd(r)) => Ok(Optim::Sgd(o.load_record(r))),
            (Optim::Adam(o), OptimizerState::Adam(r)) => Ok(Optim::Adam(o.load_record(r))),
            _ => Err(Error::config(
                "optimizer",
                "the checkpoint holds the state of another optimizer than the config names",
            )),
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
    if let ModelConfig::Esn(esn) = &cfg.model {
        return fit_esn(cfg, esn, data, device, observer);
    }
    let model = cfg.model.init::<B>(device)?;
    run_epochs(cfg, data, device, observer, model, Optim::new(cfg), None)
}

/// Continues a run from `state` (a checkpoint of the same `cfg` and `data`) up to `cfg.epochs`.
/// With the same config, the result equals the uninterrupted run's. A run with nothing left to
/// train (all epochs run, stopped early, or an ESN, fitted in one pass) is an
/// [`Error::NothingToResume`] saying how to ask for more (see [`nothing_left`]).
pub fn resume<B: AutodiffBackend>(
    cfg: &TrainConfig,
    data: &Dataset,
    device: &B::Device,
    observer: &mut dyn Observer<B>,
    state: TrainState<B>,
) -> Result<TrainOutcome<B>> {
    cfg.validate()?;
    if let Some(why) = nothing_left(cfg, &state.history, state.best_epoch) {
        return Err(Error::NothingToResume(why));
    }
    if let ModelConfig::Esn(esn) = &cfg.model {
        return fit_esn(cfg, esn, data, device, observer);
    }
    let optim = Optim::new(cfg).restore(state.optimizer.clone())?;
    let model = state.model.clone();
    run_epochs(cfg, data, device, observer, model, optim, Some(state))
}

/// Why a run of `cfg` with `history` (best epoch `best_epoch`) would train no further epoch, if
/// it would not: every epoch run, early stopping reached, or an ESN (fitted in one pass).
pub fn nothing_left(
    cfg: &TrainConfig,
    history: &[EpochMetrics],
    best_epoch: usize,
) -> Option<String> {
    let done = history.len();
    if matches!(cfg.model, ModelConfig::Esn(_)) && done > 0 {
        return Some(
            "an ESN's readout is fitted in one pass, which this run has done; train a new run to \
             change it"
                .into(),
        );
    }
    if done > cfg.epochs {
        return Some(format!(
            "it has trained {done} epochs, more than the {} asked for; pass --epochs with more \
             than {done} to train further",
            cfg.epochs
        ));
    }
    if done >= cfg.epochs {
        return Some(format!(
            "it has trained all {done} of its {} epochs; pass --epochs with more than {done} to \
             train further",
            cfg.epochs
        ));
    }
    if done > 0 && done - best_epoch >= cfg.patience {
        return Some(format!(
            "it stopped early after epoch {done}, {} epochs without a better validation NRMSE \
             than epoch {best_epoch}'s (patience {}); pass --patience with more than {} to train \
             further",
            done - best_epoch,
            cfg.patience,
            done - best_epoch
        ));
    }
    None
}

/// Fits an ESN's readout in closed form (see [`super::esn`]) and reports it as one epoch: the
/// training loss is the one-step MSE on the teacher-forced training features, the validation
/// numbers are those of closed-loop forecasts, and the learning rate is 0.
fn fit_esn<B: AutodiffBackend>(
    cfg: &TrainConfig,
    esn: &crate::models::EsnConfig,
    data: &Dataset,
    device: &B::Device,
    observer: &mut dyn Observer<B>,
) -> Result<TrainOutcome<B>> {
    check_vars(cfg, data)?;
    let start = Instant::now();
    let normalizer = training_normalizer(data, cfg.split)?;
    let series = super::esn::training_series(data, &normalizer)?;
    let (fitted, train_mse) = super::esn::fit::<B>(esn, &series, device)?;
    let model = Model::Esn(fitted);
    let spec = cfg.windows();
    let sets = split_windows(&data.segments(), spec, cfg.split, SplitFractions::default())?;
    let windows = ScaledWindows::new(data, &normalizer, spec);
    let (val_loss, val_nrmse) = validate(
        &model.valid(),
        &windows,
        &sets.val,
        &normalizer,
        cfg.batch_size,
        device,
    )?;
    let history = vec![EpochMetrics {
        epoch: 1,
        train_loss: train_mse,
        val_loss,
        val_nrmse,
        lr: 0.0,
        seconds: start.elapsed().as_secs_f64(),
        rejuvenated: 0,
    }];
    let state = TrainState {
        model: model.clone(),
        optimizer: Optim::<B>::new(cfg).state(),
        history: history.clone(),
        best: model.clone(),
        best_epoch: 1,
        normalizer: normalizer.clone(),
        fuzzy: None,
    };
    observer.epoch_done(&state, 1, true)?;
    Ok(TrainOutcome {
        best: model,
        best_epoch: 1,
        history,
        normalizer,
    })
}

fn check_vars(cfg: &TrainConfig, data: &Dataset) -> Result<()> {
    let vars = data.vars();
    if cfg.model.vars() != vars {
        return Err(Error::ShapeMismatch {
            what: "model variables and dataset columns".into(),
            expected: cfg.model.vars().to_string(),
            got: vars.to_string(),
        });
    }
    Ok(())
}

/// The shuffle generator of `epoch`: one ChaCha8 stream per epoch, so no state carries over.
fn epoch_rng(seed: u64, epoch: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    rng
}

fn run_epochs<B: AutodiffBackend>(
    cfg: &TrainConfig,
    data: &Dataset,
    device: &B::Device,
    observer: &mut dyn Observer<B>,
    mut model: Model<B>,
    mut optim: Optim<B>,
    resumed: Option<TrainState<B>>,
) -> Result<TrainOutcome<B>> {
    check_vars(cfg, data)?;
    let spec = cfg.windows();
    let fractions = SplitFractions::default();
    let sets = split_windows(&data.segments(), spec, cfg.split, fractions)?;
    let normalizer = training_normalizer(data, cfg.split)?;
    let windows = ScaledWindows::new(data, &normalizer, spec);

    let autoregressive = cfg.model.is_autoregressive();
    let steps_per_epoch = sets.train.len().div_ceil(cfg.batch_size);
    let total_steps = cfg.epochs * steps_per_epoch;

    let coverage = Coverage::of(&model, cfg.bio.scope);
    let groups = cfg.bio.splitting.as_ref().map(|s| s.groups);
    if let Some(g) = groups {
        split::check(&model, &coverage, g)?;
    }
    let fuzzy = match (&cfg.bio.fuzzy_lr, resumed.as_ref()) {
        (None, _) => None,
        (Some(_), Some(state)) => Some(state.fuzzy.clone().ok_or_else(|| {
            Error::config("checkpoint", "it holds no fuzzy learning-rate factors")
        })?),
        (Some(fl), None) => Some(FuzzyFactors::draw(&model, &coverage, fl, cfg.seed)),
    };
    let factors = fuzzy.as_ref().map(|f| f.to_device::<B>(device));

    let (mut history, mut best) = match resumed {
        Some(state) if state.normalizer != normalizer => {
            return Err(Error::config(
                "checkpoint",
                "it was trained on data with other statistics than this dataset's training split; \
                 resume with the dataset the run was trained on",
            ));
        }
        Some(state) => (state.history, Some((state.best_epoch, state.best))),
        None => (Vec::new(), None),
    };
    let stopped_early = |history: &[EpochMetrics], best: &Option<(usize, Model<B>)>| {
        best.as_ref()
            .is_some_and(|(e, _)| history.len() - e >= cfg.patience)
    };
    let first = history.len() + 1;
    for epoch in first..=cfg.epochs {
        if stopped_early(&history, &best) {
            break;
        }
        let start = Instant::now();
        let plateau = match cfg.schedule {
            LrSchedule::Cosine => None,
            LrSchedule::Plateau { factor, patience } => {
                let nrmse: Vec<f64> = history.iter().map(|m| m.val_nrmse).collect();
                Some(plateau_lr(&nrmse, cfg.lr, cfg.lr_min, factor, patience))
            }
        };
        if let (Some((_, true)), Some((_, best_model))) = (plateau, &best) {
            model = best_model.clone();
        }
        let mut order = sets.train.clone();
        order.shuffle(&mut epoch_rng(cfg.seed, epoch));
        B::seed(device, epoch_rng(cfg.seed ^ 0x5eed, epoch).next_u64());
        let mut wr_rng = epoch_rng(cfg.seed ^ 0x7e7e, epoch);
        let mut tf_rng = epoch_rng(cfg.seed ^ 0x7eac, epoch);
        let tf_ratio = cfg.strategy.ratio(epoch, cfg.epochs);
        let closed = cfg.closed_loop.filter(|c| epoch + c.epochs > cfg.epochs);
        let mut noise_rng = epoch_rng(cfg.seed ^ 0x4015e, epoch);
        let mut rejuvenated = 0;
        let mut loss_sum = 0.0;
        let mut lr = cfg.lr;
        for (i, batch) in order.chunks(cfg.batch_size).enumerate() {
            let step = (epoch - 1) * steps_per_epoch + i;
            lr = match plateau {
                Some((rate, _)) => rate,
                None => cosine_lr(cfg.lr, cfg.lr_min, step, total_steps),
            };
            let (x, y) = windows.batch::<B>(batch, device);
            let (x_in, y_in) = if cfg.input_noise > 0.0 {
                (
                    with_noise(x.clone(), cfg.input_noise, &mut noise_rng),
                    with_noise(y.clone(), cfg.input_noise, &mut noise_rng),
                )
            } else {
                (x.clone(), y.clone())
            };
            let teacher = autoregressive.then(|| {
                let feed = match closed {
                    Some(_) => Feed::Forecast,
                    None if tf_ratio >= 1.0 => Feed::Truth,
                    None if tf_ratio <= 0.0 => Feed::Forecast,
                    None => Feed::Mask(cfg.strategy.mask::<B>(
                        tf_ratio,
                        batch.len(),
                        spec.horizon,
                        &mut tf_rng,
                        device,
                    )),
                };
                Teacher {
                    inputs: y_in,
                    feed,
                    bptt: closed.map(|c| c.bptt),
                    window: cfg.window_loss,
                }
            });
            let target = model.training_target(x, y, teacher.as_ref());
            let (loss, grads) = gradients(&model, cfg.sharpness, |m: &Model<B>| {
                let forward = |m: &Model<B>| m.forward_train(x_in.clone(), teacher.as_ref());
                let out = match groups {
                    Some(g) => forward(&split::split_model(m.clone(), &coverage, g)),
                    None => forward(m),
                };
                (out - target.clone()).square().mean()
            });
            if !loss.is_finite() {
                return Err(Error::NonFinite {
                    what: "the training loss".into(),
                    at: format!("epoch {epoch}, step {} of the epoch", i + 1),
                });
            }
            loss_sum += loss * batch.len() as f64;
            let grads = match &factors {
                Some(f) => scale_gradients(&model, f, grads),
                None => grads,
            };
            let grads = match cfg.clip_grad {
                Some(max) => clip_gradients(&model, grads, max).0,
                None => grads,
            };
            model = optim.step(lr, model, grads);
            if let Some(wr) = &cfg.bio.rejuvenation
                && (step + 1).is_multiple_of(wr.every)
            {
                let scale = if wr.lr_scaled { lr / cfg.lr } else { 1.0 };
                let (m, n) = rejuvenate_model(model, &coverage, wr, scale, &mut wr_rng);
                model = m;
                rejuvenated += n;
            }
            observer.step_done(epoch, i, steps_per_epoch, loss);
        }
        let valid = match groups {
            Some(g) => split::split_model(model.valid(), &coverage, g),
            None => model.valid(),
        };
        let (val_loss, val_nrmse) = validate(
            &valid,
            &windows,
            &sets.val,
            &normalizer,
            cfg.batch_size,
            device,
        )?;
        history.push(EpochMetrics {
            epoch,
            train_loss: loss_sum / sets.train.len() as f64,
            val_loss,
            val_nrmse,
            lr,
            seconds: start.elapsed().as_secs_f64(),
            rejuvenated,
        });
        let improved = best
            .as_ref()
            .is_none_or(|(e, _)| val_nrmse < history[*e - 1].val_nrmse);
        if improved {
            best = Some((epoch, model.clone()));
        }
        let (best_epoch, best_model) = best.clone().expect("an epoch has just ended");
        let state = TrainState {
            model: model.clone(),
            optimizer: optim.state(),
            history: history.clone(),
            best: best_model,
            best_epoch,
            normalizer: normalizer.clone(),
            fuzzy: fuzzy.clone(),
        };
        observer.epoch_done(&state, cfg.epochs, improved)?;
    }
    let (best_epoch, best) = best.ok_or_else(|| {
        Error::config(
            "epochs",
            format!(
                "the run had already completed {} epochs; ask for more with --epochs",
                history.len()
            ),
        )
    })?;
    Ok(TrainOutcome {
        best,
        best_epoch,
        history,
        normalizer,
    })
}

/// `x` plus Gaussian noise of standard deviation `sigma` from the host generator `rng`.
fn with_noise<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    sigma: f64,
    rng: &mut ChaCha8Rng,
) -> Tensor<B, D> {
    let shape = x.shape();
    let noise: Vec<f32> = (0..shape.num_elements())
        .map(|_| (sigma * rng.sample::<f64, _>(StandardNormal)) as f32)
        .collect();
    let device = x.device();
    x + Tensor::from_data(TensorData::new(noise, shape), &device)
}

/// The z-score statistics of the dataset's training split (the first 80 %).
pub fn training_normalizer(data: &Dataset, split: Split) -> Result<Normalizer> {
    Normalizer::fit(&training_rows(data, split)?, data.vars())
}

/// The values of the training part of `data` under `split`, row-major (the trajectories' training
/// rows back to back).
pub fn training_rows(data: &Dataset, split: Split) -> Result<Vec<f64>> {
    let vars = data.vars();
    let [train, _, _] = split_rows(&data.segments(), split, SplitFractions::default())?;
    Ok(train
        .iter()
        .flat_map(|r| data.values[r.start * vars..r.end * vars].iter().copied())
        .collect())
}

/// Validation MSE (z-scored) and median NRMSE (de-normalised) over `starts`.
pub(crate) fn validate<B: Backend>(
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

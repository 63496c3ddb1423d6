//! What a training run needs besides the data ([`TrainConfig`]): the model, the windows, the
//! optimizer and its schedule, sharpness-aware minimisation, the bio mechanisms, the strategy of
//! the autoregressive decoder; the presets of SPEC.md §5 and chaoscast's own default recipe, and
//! the checks that refuse a setting the run could not honour.

use serde::{Deserialize, Serialize};

use super::asam::Sharpness;
use super::schedule::LrSchedule;
use super::strategy::Strategy;
use crate::bio::BioConfig;
use crate::data::Dataset;
use crate::data::window::{Split, WindowSpec};
use crate::error::{Error, Result, ensure_non_negative, ensure_positive};
use crate::models::{Decoder, ModelConfig, ModelKind, Preset};

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

impl OptimizerKind {
    /// The learning rate this optimizer usually trains at: SGD 0.1 (the paper's), Adam 1e-3.
    pub fn usual_lr(self) -> f64 {
        match self {
            Self::Adam => 1e-3,
            Self::Sgd => 0.1,
        }
    }
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

    /// The recipe with `optimizer`: when it is another optimizer than the recipe's, at that
    /// optimizer's [usual rate](OptimizerKind::usual_lr) (a preset's rate is tuned to its own
    /// optimizer); set `lr` after this to choose the rate.
    pub fn with_optimizer(mut self, optimizer: OptimizerKind) -> Self {
        if optimizer != self.optimizer {
            self.optimizer = optimizer;
            self.lr = optimizer.usual_lr();
        }
        self
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

/// Refuses a dataset whose column count is not the model's.
pub(crate) fn check_vars(cfg: &TrainConfig, data: &Dataset) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_optimizer_trains_at_its_usual_rate_and_the_same_one_keeps_the_recipes() {
        let default = TrainConfig::preset(ModelKind::Gru, Preset::Default, 3, 150, 41);
        assert_eq!(
            (default.optimizer, default.lr),
            (OptimizerKind::Adam, SMALL_ADAM_LR)
        );
        let same = default.clone().with_optimizer(OptimizerKind::Adam);
        assert_eq!(
            (same.optimizer, same.lr),
            (OptimizerKind::Adam, SMALL_ADAM_LR)
        );
        let sgd = default.with_optimizer(OptimizerKind::Sgd);
        assert_eq!((sgd.optimizer, sgd.lr), (OptimizerKind::Sgd, 0.1));
        let paper = TrainConfig::preset(ModelKind::Lstm, Preset::Paper, 3, 150, 41);
        let adam = paper.with_optimizer(OptimizerKind::Adam);
        assert_eq!((adam.optimizer, adam.lr), (OptimizerKind::Adam, 1e-3));
    }
}

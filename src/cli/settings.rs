//! The training settings of `chaoscast train`, a `train --config` TOML file and `compare`: the
//! flags' values ([`Settings`]), merged (flags over a file), and turned into a
//! [`TrainConfig`]: the preset, then each setting honoured or refused.

use std::path::PathBuf;

use anyhow::{Result, bail};
use chaoscast::bio::{
    BioConfig, BioPreset, FuzzyConfig, FuzzyDistribution, FuzzyTarget, RejuvenationConfig,
    SplittingConfig,
};
use chaoscast::data::Dataset;
use chaoscast::models::{Decoder, ModelConfig, ModelKind, Preset};
use chaoscast::train::asam::Sharpness;
use chaoscast::train::schedule::LrSchedule;
use chaoscast::train::strategy::Strategy;
use chaoscast::train::trainer::{ClosedLoop, TrainConfig};
use serde::{Deserialize, Serialize};

use super::choices::{
    BioName, DecoderName, DeviceName, FlDistName, FlTargetName, ModelName, OptimizerName,
    PresetName, SamName, SamplingName, ScheduleName, ScopeName, SplitName,
};

/// The settings a config file may give, under the flags' names; each flag is one of them.
#[derive(Clone, Debug, Default, Deserialize, Serialize, clap::Args)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Settings {
    /// Dataset file written by `chaoscast generate`.
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// Model family: lstm, gru, fdn, transformer or esn (echo state network, fitted in closed form).
    #[arg(long)]
    pub(crate) model: Option<ModelName>,
    /// default (the recipe that converges on a CPU: every neural model with the autoregressive
    /// decoder taught one step ahead, LSTM/GRU of width 128; Adam 3e-3, no weight decay, no
    /// SAM), small (quick: width 32, Adam 3e-3,
    /// batch 64, 15 epochs) or paper (SPEC: SGD 0.1, weight decay 5e-4, ASAM, batch 256, 400
    /// epochs, the direct head) [default: default].
    #[arg(long)]
    pub(crate) preset: Option<PresetName>,
    /// Maximum epochs [default preset: 280 for LSTM/GRU, 200 for the transformer, 80 for the FDN,
    /// 100 with the direct head; 15 for small, 400 for paper].
    #[arg(long)]
    pub(crate) epochs: Option<usize>,
    /// Seed of weight initialisation and shuffling [default: 0].
    #[arg(long)]
    pub(crate) seed: Option<u64>,
    /// Where to train: cpu, or cuda (a build with `--features cuda`) [default: cpu].
    #[arg(long)]
    pub(crate) device: Option<DeviceName>,
    /// Input steps L [default: 150].
    #[arg(long)]
    pub(crate) lookback: Option<usize>,
    /// Predicted steps H [default: the dataset's horizon, else one Lyapunov time].
    #[arg(long)]
    pub(crate) horizon: Option<usize>,
    /// Hidden width (LSTM/GRU hidden size, FDN channels, transformer width, ESN reservoir units).
    #[arg(long)]
    pub(crate) hidden: Option<usize>,
    /// Stacked layers (LSTM/GRU layers, transformer encoder layers).
    #[arg(long)]
    pub(crate) layers: Option<usize>,
    /// Windows per batch [default: 64 for default and small, 256 for paper].
    #[arg(long)]
    pub(crate) batch_size: Option<usize>,
    /// Initial learning rate [default: the preset's; 0.1 for SGD, 0.001 for Adam otherwise].
    #[arg(long)]
    pub(crate) lr: Option<f64>,
    /// Base optimizer: sgd or adam [default: adam for default and small, sgd for paper].
    #[arg(long)]
    pub(crate) optimizer: Option<OptimizerName>,
    /// Sharpness-aware minimisation: asam (ρ = 1, η = 0.01), sam (ρ = 0.05) or none [default:
    /// none for the default preset; asam for small and paper, none with the autoregressive
    /// decoder, which ASAM stalls].
    #[arg(long)]
    pub(crate) sam: Option<SamName>,
    /// Epochs without a better validation NRMSE before stopping [default: the preset's epoch
    /// count for the default preset (280, 200, 80 or 100), 20 otherwise].
    #[arg(long)]
    pub(crate) patience: Option<usize>,
    /// Steps between the starts of training windows [default: 5 for the default LSTM/GRU, else 1].
    #[arg(long)]
    pub(crate) stride: Option<usize>,
    /// Variables to model, comma-separated names or prefixes ending in * (e.g. 'X*') [default: all].
    #[arg(long, value_name = "NAMES")]
    pub(crate) vars: Option<String>,
    /// Synaptic diversity preset: none, paper-tuned (FL ν = 0.5 + WR d_re = 6) or paper-default
    /// (FL ν = 0.09, WR d_re = 14, WS Γ = 2) [default: none].
    #[arg(long)]
    pub(crate) bio: Option<BioName>,
    /// Fuzzy learning rates with spread ν: factors from U(1 − ν, 1 + ν) (turns FL on).
    #[arg(long, value_name = "NU")]
    pub(crate) fl_spread: Option<f64>,
    /// Distribution of the fuzzy factors: uniform, normal or lognormal [default: uniform].
    #[arg(long)]
    pub(crate) fl_dist: Option<FlDistName>,
    /// What the fuzzy factors multiply: gradient (before the optimizer, the authors' code; Adam
    /// all but cancels it) or update (the optimizer's step: a per-weight learning rate under any
    /// optimizer) [default: gradient].
    #[arg(long)]
    pub(crate) fl_target: Option<FlTargetName>,
    /// Weight rejuvenation with distance d_re: σ = max|w| / d_re (turns WR on).
    #[arg(long, value_name = "D_RE")]
    pub(crate) wr_distance: Option<f64>,
    /// Rejuvenate after every N optimizer steps [default: 1].
    #[arg(long, value_name = "N")]
    pub(crate) wr_every: Option<usize>,
    /// Use the paper's one-sided rejuvenation probability ½·erfc instead of erfc.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub(crate) wr_one_sided: Option<bool>,
    /// Scale the rejuvenation probability by the learning rate over its initial value, so
    /// rejuvenation anneals with the schedule (true or false) [default: false, the paper's].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) wr_lr_scaled: Option<bool>,
    /// Weight splitting with groups of Γ adjacent outputs (turns WS on).
    #[arg(long, value_name = "GAMMA")]
    pub(crate) ws_groups: Option<usize>,
    /// What the mechanisms reach: all (recurrent gate weights included) or reference (only linear
    /// and convolution layers, as the authors' package) [default: all].
    #[arg(long)]
    pub(crate) bio_scope: Option<ScopeName>,
    /// ESN: spectral radius ρ of the reservoir [default: 0.9].
    #[arg(long, value_name = "RHO")]
    pub(crate) spectral_radius: Option<f64>,
    /// ESN: leak rate a in (0, 1] [default: 0.5].
    #[arg(long, value_name = "A")]
    pub(crate) leak: Option<f64>,
    /// ESN: ridge regularisation β of the readout [default: 1e-6].
    #[arg(long, value_name = "BETA")]
    pub(crate) ridge: Option<f64>,
    /// ESN: input weights from U(−σ, σ) [default: 0.5].
    #[arg(long, value_name = "SIGMA")]
    pub(crate) input_scaling: Option<f64>,
    /// ESN: fraction of zero recurrent weights, in [0, 1) [default: 0.95].
    #[arg(long)]
    pub(crate) sparsity: Option<f64>,
    /// ESN: choose ρ ∈ {0.3, 0.6, 0.9, 1.2}, a ∈ {0.3, 0.6, 1.0} and β ∈ {1e-6, 1e-4, 1e-2, 1} by
    /// validation NRMSE (the test split is never read); writes search.csv to the run folder and
    /// the chosen values to config.json.
    #[arg(long, num_args = 0, default_missing_value = "true")]
    pub(crate) esn_search: Option<bool>,
    /// LSTM/GRU/FDN/transformer: direct (all steps at once, the paper's) or autoregressive (one step
    /// at a time, forecasts fed back) [default: autoregressive in the default preset, else direct].
    #[arg(long)]
    pub(crate) decoder: Option<DecoderName>,
    /// Autoregressive decoder's training: teacher-forcing, free-running, or a curriculum
    /// decreasing-… (teacher forcing to free running) or increasing-… (the reverse), each
    /// linear, exponential or inverse-sigmoid [default: teacher-forcing in the default preset,
    /// else decreasing-inverse-sigmoid].
    #[arg(long, value_parser = chaoscast::train::strategy::STRATEGIES)]
    pub(crate) strategy: Option<String>,
    /// Curriculum coin tossed per-step or per-sequence [default: per-step].
    #[arg(long)]
    pub(crate) tf_sampling: Option<SamplingName>,
    /// The curriculum's k: the exponential's base (default 0.8) or the inverse sigmoid's k
    /// (default 3).
    #[arg(long, value_name = "K")]
    pub(crate) tf_k: Option<f64>,
    /// FDN with the direct head: forecast the change from the window's last value (true or
    /// false) [default: true for the default preset, false otherwise].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) residual: Option<bool>,
    /// FDN: the variables enter together (the lift reads all of them, each head forecasts all)
    /// instead of each from its own history (true or false) [default: true for the default
    /// preset's autoregressive FDN, false otherwise].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) mixing: Option<bool>,
    /// Learning-rate schedule: cosine (annealing per step over the run) or plateau (halve the rate
    /// after 10 epochs without a better validation NRMSE and go on from the best weights)
    /// [default: cosine].
    #[arg(long)]
    pub(crate) schedule: Option<ScheduleName>,
    /// The plateau schedule's factor, in (0, 1) [default: 0.5].
    #[arg(long, value_name = "FACTOR")]
    pub(crate) plateau_factor: Option<f64>,
    /// The plateau schedule's patience in epochs [default: 10].
    #[arg(long, value_name = "EPOCHS")]
    pub(crate) plateau_patience: Option<usize>,
    /// L2 weight decay on every parameter, coupled as in PyTorch's SGD and Adam [default: 5e-4
    /// for the paper preset (SGD), 0 otherwise].
    #[arg(long, value_name = "LAMBDA")]
    pub(crate) weight_decay: Option<f64>,
    /// ASAM/SAM neighbourhood radius ρ [default: 1 for ASAM, 0.05 for SAM].
    #[arg(long, value_name = "RHO")]
    pub(crate) rho: Option<f64>,
    /// Standard deviation of Gaussian noise (z-units) added in training to the inputs, never to
    /// the targets; 0 for none [default: 0.01 for the default preset's autoregressive models,
    /// else 0].
    #[arg(long, value_name = "SIGMA")]
    pub(crate) input_noise: Option<f64>,
    /// Clip the gradients' joint L2 norm to this before every update; 0 for no clipping
    /// [default: 1 for the default preset, else 0].
    #[arg(long, value_name = "MAX")]
    pub(crate) clip_grad: Option<f64>,
    /// Autoregressive LSTM/GRU: also score the one-step forecasts inside the lookback window
    /// (true or false) [default: true for the default preset].
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) window_loss: Option<bool>,
    /// Autoregressive decoder: train the last N epochs free running (closed-loop fine-tuning);
    /// 0 for none [default: 0].
    #[arg(long, value_name = "N")]
    pub(crate) closed_loop_epochs: Option<usize>,
    /// Closed-loop fine-tuning backpropagates through at most this many fed-back steps
    /// [default: the horizon].
    #[arg(long, value_name = "STEPS")]
    pub(crate) bptt: Option<usize>,
    /// Split into train, validation and test: chronological (each trajectory's first 80 %,
    /// next 10 %, last 10 %) or by-trajectory (whole trajectories of an ensemble file made by
    /// `generate --trajectories N`) [default: chronological].
    #[arg(long)]
    pub(crate) split: Option<SplitName>,
    /// Run folder to create.
    #[arg(long, short)]
    pub(crate) output: Option<PathBuf>,
}

impl Settings {
    /// Field by field: `self` where set, else `file`.
    pub(crate) fn or(self, file: Settings) -> Self {
        Self {
            data: self.data.or(file.data),
            model: self.model.or(file.model),
            preset: self.preset.or(file.preset),
            epochs: self.epochs.or(file.epochs),
            seed: self.seed.or(file.seed),
            device: self.device.or(file.device),
            lookback: self.lookback.or(file.lookback),
            horizon: self.horizon.or(file.horizon),
            hidden: self.hidden.or(file.hidden),
            layers: self.layers.or(file.layers),
            batch_size: self.batch_size.or(file.batch_size),
            lr: self.lr.or(file.lr),
            optimizer: self.optimizer.or(file.optimizer),
            sam: self.sam.or(file.sam),
            patience: self.patience.or(file.patience),
            stride: self.stride.or(file.stride),
            vars: self.vars.or(file.vars),
            bio: self.bio.or(file.bio),
            fl_spread: self.fl_spread.or(file.fl_spread),
            fl_dist: self.fl_dist.or(file.fl_dist),
            fl_target: self.fl_target.or(file.fl_target),
            wr_distance: self.wr_distance.or(file.wr_distance),
            wr_every: self.wr_every.or(file.wr_every),
            wr_one_sided: self.wr_one_sided.or(file.wr_one_sided),
            wr_lr_scaled: self.wr_lr_scaled.or(file.wr_lr_scaled),
            ws_groups: self.ws_groups.or(file.ws_groups),
            bio_scope: self.bio_scope.or(file.bio_scope),
            spectral_radius: self.spectral_radius.or(file.spectral_radius),
            leak: self.leak.or(file.leak),
            ridge: self.ridge.or(file.ridge),
            input_scaling: self.input_scaling.or(file.input_scaling),
            sparsity: self.sparsity.or(file.sparsity),
            esn_search: self.esn_search.or(file.esn_search),
            decoder: self.decoder.or(file.decoder),
            strategy: self.strategy.or(file.strategy),
            tf_sampling: self.tf_sampling.or(file.tf_sampling),
            tf_k: self.tf_k.or(file.tf_k),
            residual: self.residual.or(file.residual),
            mixing: self.mixing.or(file.mixing),
            schedule: self.schedule.or(file.schedule),
            plateau_factor: self.plateau_factor.or(file.plateau_factor),
            plateau_patience: self.plateau_patience.or(file.plateau_patience),
            weight_decay: self.weight_decay.or(file.weight_decay),
            rho: self.rho.or(file.rho),
            input_noise: self.input_noise.or(file.input_noise),
            clip_grad: self.clip_grad.or(file.clip_grad),
            window_loss: self.window_loss.or(file.window_loss),
            closed_loop_epochs: self.closed_loop_epochs.or(file.closed_loop_epochs),
            bptt: self.bptt.or(file.bptt),
            split: self.split.or(file.split),
            output: self.output.or(file.output),
        }
    }

    /// The settings given, by their flag names (`--lr`), in alphabetical order: every field
    /// that is set, so a new setting is counted without being listed anywhere.
    pub(crate) fn given(&self) -> Vec<String> {
        // The paths are counted by hand: serde refuses a path that is not UTF-8.
        let rest = Settings {
            data: None,
            output: None,
            ..self.clone()
        };
        // TOML leaves out what is not set and keeps a NaN (which JSON makes null), but refuses a
        // count above i64::MAX, which JSON keeps: TOML's keys, else JSON's that are not null.
        let keys: Vec<String> = match toml::Table::try_from(&rest) {
            Ok(table) => table.keys().cloned().collect(),
            Err(_) => match serde_json::to_value(&rest) {
                Ok(serde_json::Value::Object(map)) => map
                    .into_iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, _)| k)
                    .collect(),
                _ => unreachable!("settings serialise to a JSON object"),
            },
        };
        let mut given: Vec<String> = keys.into_iter().map(|k| format!("--{k}")).collect();
        for (set, flag) in [
            (self.data.is_some(), "--data"),
            (self.output.is_some(), "--output"),
        ] {
            if set {
                given.push(flag.into());
            }
        }
        given.sort();
        given
    }

    /// Whether any one mechanism's own setting is given (FL spread or distribution, a WR
    /// setting, WS groups), each of which turns its mechanism on.
    pub(crate) fn sets_a_mechanism(&self) -> bool {
        self.fl_spread.is_some()
            || self.fl_dist.is_some()
            || self.fl_target.is_some()
            || self.wr_distance.is_some()
            || self.wr_every.is_some()
            || self.wr_one_sided.is_some()
            || self.wr_lr_scaled.is_some()
            || self.ws_groups.is_some()
    }

    /// The flags that change the model, which a run's config.json fixes.
    pub(super) fn shaping(&self) -> Option<&'static str> {
        [
            (self.spectral_radius.is_some(), "--spectral-radius"),
            (self.leak.is_some(), "--leak"),
            (self.ridge.is_some(), "--ridge"),
            (self.input_scaling.is_some(), "--input-scaling"),
            (self.sparsity.is_some(), "--sparsity"),
            (self.esn_search.is_some(), "--esn-search"),
            (self.decoder.is_some(), "--decoder"),
            (self.residual.is_some(), "--residual"),
            (self.mixing.is_some(), "--mixing"),
            (self.model.is_some(), "--model"),
            (self.preset.is_some(), "--preset"),
            (self.lookback.is_some(), "--lookback"),
            (self.horizon.is_some(), "--horizon"),
            (self.hidden.is_some(), "--hidden"),
            (self.layers.is_some(), "--layers"),
            (self.vars.is_some(), "--vars"),
        ]
        .into_iter()
        .find_map(|(set, flag)| set.then_some(flag))
    }
}

/// A config from the preset and the settings.
pub(super) fn fresh_config(model: ModelName, s: &Settings, data: &Dataset) -> Result<TrainConfig> {
    let kind = ModelKind::from(model);
    let preset = s.preset.map_or(Preset::Default, Preset::from);
    let decoder = s.decoder.map(Decoder::from);
    let horizon = data.meta.horizon(s.horizon)?;
    let lookback = s
        .lookback
        .unwrap_or(chaoscast::data::window::DEFAULT_LOOKBACK);
    let mut cfg = TrainConfig::preset_for(kind, preset, decoder, data.vars(), lookback, horizon)?;
    apply_sizes(&mut cfg.model, s.hidden, s.layers, s.seed.unwrap_or(0))?;
    if let Some(residual) = s.residual {
        match &mut cfg.model {
            ModelConfig::Fdn(c) if !c.is_autoregressive() => c.residual = Some(residual),
            other => bail!(
                "--residual is a setting of the FDN's direct head, not of {}{}",
                other.name(),
                if other.is_autoregressive() {
                    " with the autoregressive decoder (which forecasts changes already)"
                } else {
                    ""
                }
            ),
        }
    }
    if let Some(mixing) = s.mixing {
        match &mut cfg.model {
            ModelConfig::Fdn(c) => c.mixing = Some(mixing),
            other => bail!("--mixing is a setting of the FDN, not of {}", other.name()),
        }
    }
    // Another optimizer than the preset's trains at its usual rate unless --lr says otherwise.
    if let Some(optimizer) = s.optimizer {
        cfg = cfg.with_optimizer(optimizer.into());
    }
    overrides(cfg, s)
}

/// The settings that do not change the model's shape, applied to `cfg`.
pub(super) fn overrides(mut cfg: TrainConfig, s: &Settings) -> Result<TrainConfig> {
    if let Some(seed) = s.seed {
        cfg.seed = seed;
        set_model_seed(&mut cfg.model, seed);
    }
    cfg.epochs = s.epochs.unwrap_or(cfg.epochs);
    cfg.batch_size = s.batch_size.unwrap_or(cfg.batch_size);
    cfg.patience = s.patience.unwrap_or(cfg.patience);
    cfg.stride = s.stride.unwrap_or(cfg.stride);
    cfg.lr = s.lr.unwrap_or(cfg.lr);
    if let Some(optimizer) = s.optimizer {
        cfg.optimizer = optimizer.into();
    }
    match s.sam {
        Some(SamName::None) => cfg.sharpness = Sharpness::None,
        Some(SamName::Sam) => cfg.sharpness = Sharpness::Sam { rho: 0.05 },
        Some(SamName::Asam) => cfg.sharpness = Sharpness::default(),
        None => {}
    }
    if let Some(r) = s.rho {
        match &mut cfg.sharpness {
            Sharpness::None => {
                bail!("--rho is the radius of ASAM or SAM; add --sam asam or --sam sam")
            }
            Sharpness::Sam { rho } | Sharpness::Asam { rho, .. } => *rho = r,
        }
    }
    cfg.weight_decay = s.weight_decay.unwrap_or(cfg.weight_decay);
    match s.schedule {
        Some(ScheduleName::Cosine) => cfg.schedule = LrSchedule::Cosine,
        Some(ScheduleName::Plateau) => cfg.schedule = LrSchedule::plateau(),
        None => {}
    }
    if s.plateau_factor.is_some() || s.plateau_patience.is_some() {
        let LrSchedule::Plateau { factor, patience } = &mut cfg.schedule else {
            bail!("--plateau-factor and --plateau-patience belong to --schedule plateau");
        };
        *factor = s.plateau_factor.unwrap_or(*factor);
        *patience = s.plateau_patience.unwrap_or(*patience);
    }
    cfg.input_noise = s.input_noise.unwrap_or(cfg.input_noise);
    if let Some(split) = s.split {
        cfg.split = split.into();
    }
    match s.clip_grad {
        Some(0.0) => cfg.clip_grad = None,
        Some(c) => cfg.clip_grad = Some(c),
        None => {}
    }
    cfg.window_loss = s.window_loss.unwrap_or(cfg.window_loss);
    match (s.closed_loop_epochs, s.bptt) {
        (Some(0), Some(_)) => {
            bail!("--bptt bounds closed-loop fine-tuning; give --closed-loop-epochs N > 0")
        }
        (Some(0), None) => cfg.closed_loop = None,
        (Some(epochs), bptt) => {
            cfg.closed_loop = Some(ClosedLoop {
                epochs,
                bptt: bptt
                    .or(cfg.closed_loop.map(|c| c.bptt))
                    .unwrap_or(cfg.model.horizon()),
            })
        }
        (None, Some(bptt)) => match &mut cfg.closed_loop {
            Some(c) => c.bptt = bptt,
            None => bail!("--bptt bounds closed-loop fine-tuning; add --closed-loop-epochs N"),
        },
        (None, None) => {}
    }
    apply_bio(&mut cfg.bio, s)?;
    apply_esn(&mut cfg.model, s)?;
    if let Some(name) = &s.strategy {
        cfg.strategy = Strategy::named(name)?;
    }
    if let Some(sampling) = s.tf_sampling {
        cfg.strategy.sampling = sampling.into();
    }
    cfg.strategy.k = s.tf_k.unwrap_or(cfg.strategy.k);
    if !cfg.model.is_autoregressive()
        && (s.strategy.is_some() || s.tf_sampling.is_some() || s.tf_k.is_some())
    {
        bail!(
            "--strategy, --tf-sampling and --tf-k train the autoregressive decoder; add --decoder autoregressive (lstm, gru, fdn or transformer)"
        );
    }
    Ok(cfg)
}

/// The ESN's reservoir settings; an error for any other model.
pub(super) fn apply_esn(model: &mut ModelConfig, s: &Settings) -> Result<()> {
    let given = [
        (s.spectral_radius.is_some(), "--spectral-radius"),
        (s.leak.is_some(), "--leak"),
        (s.ridge.is_some(), "--ridge"),
        (s.input_scaling.is_some(), "--input-scaling"),
        (s.sparsity.is_some(), "--sparsity"),
        (s.esn_search.is_some(), "--esn-search"),
    ];
    if s.esn_search == Some(true)
        && let Some((_, flag)) = given[..3].iter().find(|(set, _)| *set)
    {
        bail!("{flag} and --esn-search both set it; --esn-search chooses ρ, a and β itself");
    }
    let ModelConfig::Esn(c) = model else {
        if let Some((_, flag)) = given.iter().find(|(set, _)| *set) {
            bail!(
                "{flag} is a setting of the ESN (--model esn), not of {}",
                model.name()
            );
        }
        return Ok(());
    };
    c.spectral_radius = s.spectral_radius.unwrap_or(c.spectral_radius);
    c.leak = s.leak.unwrap_or(c.leak);
    c.ridge = s.ridge.unwrap_or(c.ridge);
    c.input_scaling = s.input_scaling.unwrap_or(c.input_scaling);
    c.sparsity = s.sparsity.unwrap_or(c.sparsity);
    Ok(())
}

/// The bio preset, then the per-mechanism settings (each turns its mechanism on).
pub(super) fn apply_bio(bio: &mut BioConfig, s: &Settings) -> Result<()> {
    if let Some(preset) = s.bio {
        *bio = BioConfig::preset(BioPreset::from(preset));
    }
    if s.fl_spread.is_some() || s.fl_dist.is_some() || s.fl_target.is_some() {
        let fl = bio.fuzzy_lr.get_or_insert_with(FuzzyConfig::default);
        fl.spread = s.fl_spread.unwrap_or(fl.spread);
        fl.distribution = s.fl_dist.map_or(fl.distribution, FuzzyDistribution::from);
        fl.target = s.fl_target.map_or(fl.target, FuzzyTarget::from);
    }
    if s.wr_distance.is_some()
        || s.wr_every.is_some()
        || s.wr_one_sided.is_some()
        || s.wr_lr_scaled.is_some()
    {
        let wr = bio
            .rejuvenation
            .get_or_insert_with(RejuvenationConfig::default);
        wr.distance = s.wr_distance.unwrap_or(wr.distance);
        wr.every = s.wr_every.unwrap_or(wr.every);
        wr.one_sided = s.wr_one_sided.unwrap_or(wr.one_sided);
        wr.lr_scaled = s.wr_lr_scaled.unwrap_or(wr.lr_scaled);
    }
    if let Some(groups) = s.ws_groups {
        bio.splitting = Some(SplittingConfig { groups });
    }
    if let Some(scope) = s.bio_scope {
        bio.scope = scope.into();
    }
    Ok(())
}

pub(super) fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

pub(super) fn set_model_seed(model: &mut ModelConfig, seed: u64) {
    match model {
        ModelConfig::Recurrent(c) => c.seed = seed,
        ModelConfig::Fdn(c) => c.seed = seed,
        ModelConfig::Transformer(c) => c.seed = seed,
        ModelConfig::Esn(c) => c.seed = seed,
    }
}

/// Applies `--hidden`, `--layers` and the seed to whichever model it is; `--layers` for a model
/// without stacked layers (the FDN, the ESN) is an error.
pub(super) fn apply_sizes(
    model: &mut ModelConfig,
    hidden: Option<usize>,
    layers: Option<usize>,
    seed: u64,
) -> Result<()> {
    set_model_seed(model, seed);
    if layers.is_some() && matches!(model, ModelConfig::Fdn(_) | ModelConfig::Esn(_)) {
        bail!(
            "--layers stacks LSTM, GRU or transformer layers; the {} has none to stack",
            model.name()
        );
    }
    match model {
        ModelConfig::Recurrent(c) => {
            c.hidden = hidden.unwrap_or(c.hidden);
            c.layers = layers.unwrap_or(c.layers);
        }
        ModelConfig::Fdn(c) => {
            c.channels = hidden.unwrap_or(c.channels);
        }
        ModelConfig::Transformer(c) => {
            c.d_model = hidden.unwrap_or(c.d_model);
            c.layers = layers.unwrap_or(c.layers);
        }
        ModelConfig::Esn(c) => {
            c.reservoir = hidden.unwrap_or(c.reservoir);
        }
    }
    Ok(())
}

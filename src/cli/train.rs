//! `chaoscast train`: train a forecaster on a dataset file and write a run folder.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::backend::{Autodiff, Flex};
use chaoscast::data::read_dataset;
use chaoscast::models::{Model, ModelConfig, ModelKind, Preset};
use chaoscast::run::{RUN_FORMAT_VERSION, RunConfig, save_metrics, save_model};
use chaoscast::train::asam::Sharpness;
use chaoscast::train::trainer::{
    EpochMetrics, Observer, OptimizerKind, TrainConfig, train, training_normalizer,
};

type Train = Autodiff<Flex>;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
    chaoscast generate datasets/thomas.toml -o thomas.parquet\n  \
    chaoscast train --data thomas.parquet --model lstm --preset small --epochs 10 --output runs/lstm\n\n\
    Flags override the preset. The run folder gets config.json, metrics.csv and model.mpk (the\n\
    best model by validation NRMSE, saved whenever it improves).")]
pub(crate) struct Args {
    /// Dataset file written by `chaoscast generate`.
    #[arg(long)]
    data: PathBuf,
    /// Model family: lstm, gru, fdn or transformer.
    #[arg(long)]
    model: String,
    /// Sizes and epochs: small (CPU-friendly, 20 epochs) or paper (400 epochs).
    #[arg(long, default_value = "small", value_parser = ["small", "paper"])]
    preset: String,
    /// Maximum epochs [default: 20 for small, 400 for paper].
    #[arg(long)]
    epochs: Option<usize>,
    /// Seed of weight initialisation and shuffling [default: 0].
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Input steps L [default: 150].
    #[arg(long)]
    lookback: Option<usize>,
    /// Predicted steps H [default: the dataset's horizon, else one Lyapunov time].
    #[arg(long)]
    horizon: Option<usize>,
    /// Hidden width (LSTM/GRU hidden size, FDN channels, transformer width).
    #[arg(long)]
    hidden: Option<usize>,
    /// Stacked layers (LSTM/GRU layers, transformer encoder layers).
    #[arg(long)]
    layers: Option<usize>,
    /// Windows per batch [default: 256].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Initial learning rate [default: 0.1 for SGD, 0.001 for Adam].
    #[arg(long)]
    lr: Option<f64>,
    /// Base optimizer.
    #[arg(long, default_value = "sgd", value_parser = ["sgd", "adam"])]
    optimizer: String,
    /// Sharpness-aware minimisation: asam (ρ = 1, η = 0.01), sam (ρ = 0.05) or none.
    #[arg(long, default_value = "asam", value_parser = ["asam", "sam", "none"])]
    sam: String,
    /// Epochs without a better validation NRMSE before stopping [default: 20].
    #[arg(long)]
    patience: Option<usize>,
    /// Run folder to create.
    #[arg(long, short)]
    output: PathBuf,
    /// Reuse an existing, non-empty run folder.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: Args, quiet: bool) -> Result<()> {
    let data = read_dataset(&args.data)?;
    let horizon = data.meta.horizon(args.horizon)?;
    let kind: ModelKind = args.model.parse()?;
    let preset = if args.preset == "paper" {
        Preset::Paper
    } else {
        Preset::Small
    };
    let lookback = args
        .lookback
        .unwrap_or(chaoscast::data::window::DEFAULT_LOOKBACK);
    let mut model = ModelConfig::preset(kind, preset, data.vars(), lookback, horizon);
    apply_sizes(&mut model, args.hidden, args.layers, args.seed);
    let mut cfg = TrainConfig::new(model);
    cfg.lookback = lookback;
    cfg.seed = args.seed;
    cfg.epochs = args
        .epochs
        .unwrap_or(if preset == Preset::Small { 20 } else { 400 });
    cfg.batch_size = args.batch_size.unwrap_or(cfg.batch_size);
    cfg.patience = args.patience.unwrap_or(cfg.patience);
    cfg.optimizer = if args.optimizer == "adam" {
        OptimizerKind::Adam
    } else {
        OptimizerKind::Sgd
    };
    cfg.lr = args.lr.unwrap_or(if cfg.optimizer == OptimizerKind::Adam {
        1e-3
    } else {
        0.1
    });
    cfg.sharpness = match args.sam.as_str() {
        "none" => Sharpness::None,
        "sam" => Sharpness::Sam { rho: 0.05 },
        _ => Sharpness::default(),
    };
    cfg.validate()?;
    prepare_folder(&args.output, args.force)?;
    let run_cfg = RunConfig {
        format_version: RUN_FORMAT_VERSION,
        chaoscast_version: env!("CARGO_PKG_VERSION").to_string(),
        train: cfg.clone(),
        data_path: std::fs::canonicalize(&args.data).unwrap_or(args.data.clone()),
        data: data.meta.clone(),
        names: data.names.clone(),
        normalizer: training_normalizer(&data)?,
    };
    // The config goes first, so a run that stops early still has everything eval needs.
    run_cfg.save(&args.output)?;
    let mut saver = RunSaver {
        folder: args.output.clone(),
        quiet,
        name: cfg.model.name(),
    };
    let outcome = train::<Train>(&cfg, &data, &Default::default(), &mut saver)?;
    let best = &outcome.history[outcome.best_epoch - 1];
    println!(
        "trained {} for {} epochs; best validation NRMSE {:.4} at epoch {}; run folder {}",
        cfg.model.name(),
        outcome.history.len(),
        best.val_nrmse,
        outcome.best_epoch,
        args.output.display()
    );
    println!("next: chaoscast eval {}", args.output.display());
    Ok(())
}

/// Applies `--hidden`, `--layers` and the seed to whichever model it is.
fn apply_sizes(model: &mut ModelConfig, hidden: Option<usize>, layers: Option<usize>, seed: u64) {
    match model {
        ModelConfig::Recurrent(c) => {
            c.hidden = hidden.unwrap_or(c.hidden);
            c.layers = layers.unwrap_or(c.layers);
            c.seed = seed;
        }
        ModelConfig::Fdn(c) => {
            c.channels = hidden.unwrap_or(c.channels);
            c.seed = seed;
        }
        ModelConfig::Transformer(c) => {
            c.d_model = hidden.unwrap_or(c.d_model);
            c.layers = layers.unwrap_or(c.layers);
            c.seed = seed;
        }
    }
}

fn prepare_folder(folder: &PathBuf, force: bool) -> Result<()> {
    if folder.is_file() {
        bail!("{} is a file, not a run folder", folder.display());
    }
    let non_empty = folder
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if non_empty && !force {
        bail!(
            "{} already holds files; pass --force to reuse it or choose another --output",
            folder.display()
        );
    }
    std::fs::create_dir_all(folder).with_context(|| format!("cannot create {}", folder.display()))
}

/// Writes metrics every epoch and the model whenever it improves; prints one line per epoch.
struct RunSaver {
    folder: PathBuf,
    quiet: bool,
    name: &'static str,
}

impl Observer<Train> for RunSaver {
    fn epoch_done(
        &mut self,
        history: &[EpochMetrics],
        epochs: usize,
        improved: Option<&Model<Train>>,
    ) -> chaoscast::Result<()> {
        save_metrics(history, &self.folder)?;
        if let Some(model) = improved {
            save_model(model.clone(), &self.folder)?;
        }
        if !self.quiet {
            let m = history.last().expect("an epoch just ended");
            eprintln!(
                "{} epoch {}/{epochs}: train loss {:.4}, validation NRMSE {:.4}{}, lr {:.2e}, {:.1} s",
                self.name,
                m.epoch,
                m.train_loss,
                m.val_nrmse,
                if improved.is_some() { " (best)" } else { "" },
                m.lr,
                m.seconds
            );
        }
        Ok(())
    }
}

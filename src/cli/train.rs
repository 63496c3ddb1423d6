//! `chaoscast train`: train a forecaster on a dataset and write a run folder, or resume one.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use burn::tensor::backend::AutodiffBackend;
use chaoscast::data::{Dataset, read_dataset};
use chaoscast::models::ModelConfig;
use chaoscast::run::{RunConfig, RunFolder, load_checkpoint, write_atomic};
use chaoscast::train::esn::{EsnGrid, SearchRow, search_csv};
use chaoscast::train::trainer::{
    Observer, TrainConfig, TrainOutcome, TrainState, nothing_left, resume, train,
};
use indicatif::{ProgressBar, ProgressStyle};

use super::choices::DeviceName;
pub(crate) use super::settings::Settings;
use super::settings::{fresh_config, overrides, split_list};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    chaoscast generate datasets/thomas.toml -o thomas.parquet\n  \
    chaoscast train --data thomas.parquet --model lstm --output runs/lstm     # the default recipe, ~5 min\n  \
    chaoscast train --data thomas.parquet --model lstm --decoder direct -o runs/lstm-direct  # the paper's head\n  \
    chaoscast train --data thomas.parquet --model lstm --preset paper -o runs/paper   # the paper's protocol\n  \
    chaoscast train --resume runs/lstm --epochs 400      # continue from the last checkpoint\n  \
    chaoscast train --config runs/lstm/config.json --seed 1 -o runs/lstm-seed1   # same run, new seed\n  \
    chaoscast train --data l96.parquet --vars 'X*' --model gru -o runs/gru-slow  # slow variables only\n\n\
    Flags override the config file, which overrides the preset. --config takes a TOML file whose keys\n\
    are the flags' names (data, model, preset, epochs, seed, device, lookback, horizon, hidden, layers,\n\
    batch-size, lr, optimizer, sam, patience, stride, vars, bio, fl-spread, fl-dist, fl-target,\n\
    wr-distance, wr-every, wr-one-sided, wr-lr-scaled, ws-groups, bio-scope, spectral-radius, leak,\n\
    ridge, input-scaling, sparsity, esn-search, decoder, strategy, tf-sampling, tf-k, residual, mixing,\n\
    schedule, plateau-factor, plateau-patience, weight-decay, rho, input-noise, clip-grad, window-loss,\n\
    closed-loop-epochs, bptt, split, output), or a run's config.json to repeat that run exactly. The run\n\
    folder gets config.json first, then every epoch metrics.csv and checkpoint.bin (model, optimizer\n\
    state, history: what --resume needs), and model.mpk (the best model by validation NRMSE)\n\
    whenever it improves.")]
pub(crate) struct Args {
    /// A TOML file of flag values, or a run's config.json.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Continue the run in this folder from its last checkpoint (with --epochs: up to that many).
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["model", "preset", "config", "output"])]
    resume: Option<PathBuf>,
    /// Reuse an existing, non-empty run folder.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    settings: Settings,
}

pub(crate) fn run(args: Args, quiet: bool) -> Result<()> {
    if let Some(run) = args.resume.clone() {
        return resume_run(&run, &args, quiet);
    }
    let flags = args.settings.clone();
    let (settings, base) = match &args.config {
        None => (flags, None),
        Some(path) if path.extension().is_some_and(|e| e == "json") => {
            let run = RunConfig::load_file(path)?;
            if let Some(flag) = flags.shaping() {
                bail!(
                    "{flag} cannot change a model read from {}; write a TOML config instead",
                    path.display()
                );
            }
            (flags, Some(run))
        }
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let file: Settings = toml::from_str(&text).map_err(|e| {
                anyhow::anyhow!(
                    "cannot use {}: {}",
                    path.display(),
                    e.message().trim_end_matches('.')
                )
            })?;
            (flags.or(file), None)
        }
    };
    let summary = train_settings(&settings, base, args.force, quiet)?;
    finish(
        summary,
        settings.output.as_deref().unwrap_or(Path::new(".")),
    )
}

/// Trains a fresh run from merged settings (and a run config to start from, if any).
pub(crate) fn train_settings(
    settings: &Settings,
    base: Option<RunConfig>,
    force: bool,
    quiet: bool,
) -> Result<Summary> {
    let Some(output) = settings.output.clone() else {
        bail!("--output is required: the run folder to create");
    };
    let (cfg, data_path, data) = resolve(settings, base)?;
    let device = settings.device.unwrap_or(DeviceName::Cpu);
    check_device(device)?;
    prepare_folder(&output, force)?;
    let cfg = if settings.esn_search == Some(true) {
        esn_search(cfg, &data, &output, quiet)?
    } else {
        cfg
    };
    let run_cfg = RunConfig::new(cfg.clone(), &data_path, &data)?;
    // The config goes first, so a run that stops early still has everything eval needs.
    run_cfg.save(&output)?;
    let job = Job {
        cfg: &cfg,
        data: &data,
        folder: &output,
        quiet,
        resume: false,
    };
    job.on_device(device)
}

/// The training configuration `settings` give (over `base`, a run's saved config, where set),
/// validated, with the dataset's path and its selected variables.
fn resolve(
    settings: &Settings,
    base: Option<RunConfig>,
) -> Result<(TrainConfig, PathBuf, Dataset)> {
    let data_path = settings
        .data
        .clone()
        .or_else(|| base.as_ref().map(|b| b.data_path.clone()));
    let Some(data_path) = data_path else {
        bail!("--data is required: a dataset file written by `chaoscast generate`");
    };
    let full = read_dataset(&data_path)?;
    let names = match (&settings.vars, &base) {
        (Some(vars), _) => full.select_names(&split_list(vars))?,
        (None, Some(b)) => b.names.clone(),
        (None, None) => full.names.clone(),
    };
    let data = full.select(&names)?;
    let cfg = match base {
        Some(b) => overrides(b.train, settings)?,
        None => {
            let Some(model) = settings.model else {
                bail!("--model is required: lstm, gru, fdn, transformer or esn");
            };
            fresh_config(model, settings, &data)?
        }
    };
    cfg.validate()?;
    Ok((cfg, data_path, data))
}

/// Everything that defines the run `settings` would train from scratch, as one text: the
/// resolved training configuration, the variables, the ESN search and the device, and
/// `data_fnv1a`, the [`fnv1a`] fingerprint of the dataset file's bytes. Two settings with the
/// same definition train the same run, so `compare` keys its cell folders by it.
pub(crate) fn definition(settings: &Settings, data_fnv1a: u64) -> Result<String> {
    let (cfg, _, data) = resolve(settings, None)?;
    let value = serde_json::json!({
        "train": cfg,
        "names": data.names,
        "esn_search": settings.esn_search == Some(true),
        "device": settings.device.unwrap_or(DeviceName::Cpu).as_str(),
        "data_fnv1a": format!("{data_fnv1a:016x}"),
    });
    Ok(serde_json::to_string_pretty(&value)?)
}

/// The 64-bit FNV-1a hash: stable across platforms and Rust versions, unlike `DefaultHasher`.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Runs the ESN grid search, writes `search.csv` and returns `cfg` with the chosen values.
fn esn_search(
    mut cfg: TrainConfig,
    data: &Dataset,
    output: &Path,
    quiet: bool,
) -> Result<TrainConfig> {
    let grid = EsnGrid::default();
    let mut report = |row: &SearchRow, done: usize, total: usize| {
        if !quiet {
            eprintln!(
                "esn search {done}/{total}: ρ = {}, a = {}, β = {:e}: validation NRMSE {:.4}",
                row.spectral_radius, row.leak, row.ridge, row.val_nrmse
            );
        }
    };
    let (chosen, rows) = chaoscast::train::esn::search::<burn::backend::Flex>(
        &cfg,
        data,
        &grid,
        &Default::default(),
        &mut report,
    )?;
    write_atomic(&output.join("search.csv"), search_csv(&rows).as_bytes())?;
    if !quiet {
        eprintln!(
            "esn search: chose ρ = {}, a = {}, β = {:e} (all {} rows in {})",
            chosen.spectral_radius,
            chosen.leak,
            chosen.ridge,
            rows.len(),
            output.join("search.csv").display()
        );
    }
    cfg.model = ModelConfig::Esn(chosen);
    Ok(cfg)
}

/// Continues a run from its checkpoint.
fn resume_run(run: &Path, args: &Args, quiet: bool) -> Result<()> {
    let summary = resume_settings(run, &args.settings.clone(), quiet)?;
    finish(summary, run)
}

/// Resumes the run in `run`; `flags` may change only epochs, patience, data and device.
pub(crate) fn resume_settings(run: &Path, flags: &Settings, quiet: bool) -> Result<Summary> {
    // Everything a run's config.json fixes; what the resumed run may change is named here.
    const RESUMABLE: [&str; 4] = ["--epochs", "--patience", "--data", "--device"];
    if let Some(flag) = flags
        .given()
        .into_iter()
        .find(|f| !RESUMABLE.contains(&f.as_str()))
    {
        let [rest @ .., last] = RESUMABLE;
        bail!(
            "{flag} cannot change a run being resumed (only {} and {last} can)",
            rest.join(", ")
        );
    }
    let mut run_cfg = RunConfig::load(run)?;
    let data_path = flags.data.clone().unwrap_or(run_cfg.data_path.clone());
    let full = read_dataset(&data_path)?;
    if full.meta.recipe != run_cfg.data.recipe {
        bail!(
            "{} is not the dataset this run was trained on (its recipe differs from the one in {}); pass the original with --data",
            data_path.display(),
            chaoscast::run::config_path(run).display()
        );
    }
    let data = full.select(&run_cfg.names)?;
    run_cfg.train.epochs = flags.epochs.unwrap_or(run_cfg.train.epochs);
    run_cfg.train.patience = flags.patience.unwrap_or(run_cfg.train.patience);
    run_cfg.train.validate()?;
    let device = flags.device.unwrap_or(DeviceName::Cpu);
    check_device(device)?;
    if !chaoscast::run::checkpoint_path(run).is_file() {
        bail!(
            "{} holds no checkpoint.bin, so there is nothing to resume; train it anew with --force",
            run.display()
        );
    }
    // Refused before config.json is rewritten with the new limits.
    let history = chaoscast::run::load_metrics(run)?;
    if let Some(why) = nothing_left(&run_cfg.train, &history, best_epoch(&history)) {
        return Err(chaoscast::Error::NothingToResume(why).into());
    }
    run_cfg.save(run)?;
    let cfg = run_cfg.train.clone();
    let job = Job {
        cfg: &cfg,
        data: &data,
        folder: run,
        quiet,
        resume: true,
    };
    job.on_device(device)
}

/// The epoch of the best validation NRMSE in `history` (the first, on ties; 0 for none), as the
/// trainer keeps it.
pub(crate) fn best_epoch(history: &[chaoscast::train::trainer::EpochMetrics]) -> usize {
    history
        .iter()
        .min_by(|a, b| a.val_nrmse.total_cmp(&b.val_nrmse))
        .map_or(0, |m| m.epoch)
}

/// Refuses a device this build cannot train on, before anything is written.
fn check_device(device: DeviceName) -> Result<()> {
    match device {
        DeviceName::Cpu => Ok(()),
        DeviceName::Cuda if cfg!(feature = "cuda") => Ok(()),
        DeviceName::Cuda => bail!(
            "this chaoscast was built without CUDA; rebuild with `CUDARC_CUDA_VERSION=13000 cargo build --release --features cuda` or use --device cpu"
        ),
    }
}

/// What one training job needs, whatever the backend.
struct Job<'a> {
    cfg: &'a TrainConfig,
    data: &'a Dataset,
    folder: &'a Path,
    quiet: bool,
    resume: bool,
}

/// What a training job reports at the end.
pub(crate) struct Summary {
    pub(crate) model: &'static str,
    pub(crate) epochs: usize,
    pub(crate) best_epoch: usize,
    pub(crate) best_nrmse: f64,
}

impl Job<'_> {
    fn on_device(&self, device: DeviceName) -> Result<Summary> {
        match device {
            DeviceName::Cuda => self.cuda(),
            DeviceName::Cpu => {
                self.go::<burn::backend::Autodiff<burn::backend::Flex>>(&Default::default())
            }
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda(&self) -> Result<Summary> {
        self.go::<burn::backend::Autodiff<burn::backend::Cuda>>(&Default::default())
    }

    #[cfg(not(feature = "cuda"))]
    fn cuda(&self) -> Result<Summary> {
        bail!(
            "this chaoscast was built without CUDA; rebuild with `CUDARC_CUDA_VERSION=13000 cargo build --release --features cuda` or use --device cpu"
        )
    }

    fn go<B: AutodiffBackend>(&self, device: &B::Device) -> Result<Summary> {
        let _graceful = super::Graceful::start();
        let mut shown = EpochDisplay::new(self.folder, self.cfg, self.quiet);
        let outcome: TrainOutcome<B> = if self.resume {
            let state = load_checkpoint::<B>(self.cfg, self.folder, device)?;
            if let Some(why) = nothing_left(self.cfg, &state.history, state.best_epoch) {
                return Err(chaoscast::Error::NothingToResume(why).into());
            }
            shown.resumed_at(state.epoch());
            let mut folder = RunFolder::resume(self.folder, self.cfg, shown);
            let outcome = resume(self.cfg, self.data, device, &mut folder, state)?;
            shown = folder.into_inner();
            outcome
        } else {
            let mut folder = RunFolder::resume(self.folder, self.cfg, shown);
            let outcome = train(self.cfg, self.data, device, &mut folder)?;
            shown = folder.into_inner();
            outcome
        };
        shown.finish();
        Ok(Summary {
            model: self.cfg.model.name(),
            epochs: outcome.history.len(),
            best_epoch: outcome.best_epoch,
            best_nrmse: outcome.history[outcome.best_epoch - 1].val_nrmse,
        })
    }
}

fn finish(summary: Summary, folder: &Path) -> Result<()> {
    println!(
        "trained {} for {} epochs; best validation NRMSE {:.4} at epoch {}; run folder {}",
        summary.model,
        summary.epochs,
        summary.best_nrmse,
        summary.best_epoch,
        folder.display()
    );
    println!("next: chaoscast eval {}", folder.display());
    Ok(())
}

fn prepare_folder(folder: &Path, force: bool) -> Result<()> {
    if folder.is_file() {
        bail!("{} is a file, not a run folder", folder.display());
    }
    let non_empty = folder
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if non_empty && !force {
        bail!(
            "{} already holds files; pass --force to reuse it, --resume to continue it, or choose another --output",
            folder.display()
        );
    }
    std::fs::create_dir_all(folder)
        .with_context(|| format!("cannot create {}", folder.display()))?;
    // Nothing of the old run may survive: a crash before the first epoch would otherwise leave
    // its checkpoint for --resume, and its report beside the new run's config.
    chaoscast::run::clear_run(folder)?;
    Ok(())
}

/// What training shows inside a [`RunFolder`] (which writes the files): a progress bar over all
/// steps on a terminal, one line per epoch otherwise; and the stop after SIGTERM or SIGUSR1, once
/// the epoch is saved.
struct EpochDisplay<'a> {
    folder: &'a Path,
    cfg: &'a TrainConfig,
    quiet: bool,
    bar: Option<ProgressBar>,
    start_epoch: usize,
    last: String,
}

impl<'a> EpochDisplay<'a> {
    fn new(folder: &'a Path, cfg: &'a TrainConfig, quiet: bool) -> Self {
        Self {
            folder,
            cfg,
            quiet,
            bar: None,
            start_epoch: 0,
            last: String::new(),
        }
    }

    fn resumed_at(&mut self, epoch: usize) {
        self.start_epoch = epoch;
        if !self.quiet {
            eprintln!(
                "resuming {} from its checkpoint after epoch {epoch}",
                self.folder.display()
            );
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl<B: AutodiffBackend> Observer<B> for EpochDisplay<'_> {
    fn step_done(&mut self, epoch: usize, step: usize, steps: usize, loss: f64) {
        if self.quiet || !std::io::stderr().is_terminal() {
            return;
        }
        let epochs = self.cfg.epochs;
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new((epochs * steps) as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{elapsed_precise}] {wide_bar} {percent:>3}% (ETA {eta})",
                )
                .expect("the progress template should be valid"),
            );
            bar.set_position((self.start_epoch * steps) as u64);
            bar.reset_eta();
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        bar.set_position(((epoch - 1) * steps + step + 1) as u64);
        bar.set_message(format!(
            "{} epoch {epoch}/{epochs} · loss {loss:.4}{}",
            self.cfg.model.name(),
            self.last
        ));
    }

    fn epoch_done(
        &mut self,
        state: &TrainState<B>,
        epochs: usize,
        improved: bool,
    ) -> chaoscast::Result<()> {
        if super::STOP.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(chaoscast::Error::Interrupted {
                epoch: state.history.len(),
            });
        }
        let m = state.history.last().expect("an epoch just ended");
        self.last = format!(
            " · val NRMSE {:.4} (best {:.4})",
            m.val_nrmse,
            state.best_nrmse()
        );
        if !self.quiet {
            let rejuvenated = if self.cfg.bio.rejuvenation.is_some() {
                format!(", {} weights rejuvenated", m.rejuvenated)
            } else {
                String::new()
            };
            let line = format!(
                "{} epoch {}/{epochs}: train loss {:.4}, validation NRMSE {:.4}{}, lr {:.2e}, {:.1} s{rejuvenated}",
                self.cfg.model.name(),
                m.epoch,
                m.train_loss,
                m.val_nrmse,
                if improved { " (best)" } else { "" },
                m.lr,
                m.seconds
            );
            match &self.bar {
                Some(bar) => bar.println(line),
                None => eprintln!("{line}"),
            }
        }
        Ok(())
    }
}

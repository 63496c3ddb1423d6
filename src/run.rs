//! Run folders: what `chaoscast train` writes and `eval` reads back.
//!
//! A run folder holds `config.json` (the training config, the dataset's path and recipe, the
//! normalisation statistics, versions), `metrics.csv` (one line per epoch), and `model.mpk` (the
//! best model so far, Burn's named MessagePack record, device-independent) and `checkpoint.bin`
//! (everything `train --resume` needs, see [`crate::train::checkpoint`]). Every file is written
//! under a temporary name and renamed into place.
//!
//! [`RunFolder`] is the training observer that writes one: a library program that trains with it
//! gets the folder `chaoscast train` writes, for [`crate::forecaster::Forecaster::load`],
//! [`crate::eval::evaluate_run`] and `train --resume`.

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::data::normalize::Normalizer;
use crate::data::store::AtomicFile;
use crate::data::{Dataset, DatasetMeta};
use crate::error::{Error, Result};
use crate::models::Model;
use crate::train::checkpoint;
use crate::train::config::TrainConfig;
use crate::train::state::{EpochMetrics, Observer, TrainState};

/// Version of the run-folder layout.
pub const RUN_FORMAT_VERSION: u32 = 1;

/// Everything needed to rebuild and evaluate a trained model, saved as `config.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunConfig {
    /// Run-folder layout version ([`RUN_FORMAT_VERSION`]).
    pub format_version: u32,
    /// The chaoscast version that trained it.
    pub chaoscast_version: String,
    /// The training configuration (model included).
    pub train: TrainConfig,
    /// The dataset file trained on.
    pub data_path: PathBuf,
    /// The dataset's recipe and provenance.
    pub data: DatasetMeta,
    /// Variable names, in model order.
    pub names: Vec<String>,
    /// The training split's statistics.
    pub normalizer: Normalizer,
}

/// Paths inside a run folder.
pub fn config_path(run: &Path) -> PathBuf {
    run.join("config.json")
}

/// The epoch log.
pub fn metrics_path(run: &Path) -> PathBuf {
    run.join("metrics.csv")
}

/// The best model.
pub fn model_path(run: &Path) -> PathBuf {
    run.join("model.mpk")
}

/// The latest checkpoint.
pub fn checkpoint_path(run: &Path) -> PathBuf {
    run.join("checkpoint.bin")
}

/// The files `train`, `eval`, `compare` and `export` write into a run folder, besides the
/// numbered forecast plots (`forecast_N.png`).
pub const RUN_FILES: [&str; 16] = [
    "config.json",
    "metrics.csv",
    "model.mpk",
    "checkpoint.bin",
    "search.csv",
    "report.json",
    "nrmse_steps.csv",
    "nrmse.png",
    "loss.png",
    "diverged.txt",
    "cell.json",
    "climate.csv",
    "climate_attractor.png",
    "climate_spectra.png",
    "climate_density.png",
    "model.safetensors",
];

/// Removes every run file ([`RUN_FILES`], the forecast plots) from `run`, so that nothing of an
/// earlier run survives into a new one trained in the same folder; other files stay.
pub fn clear_run(run: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(run) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read", run, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read", run, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let forecast_plot = name
            .strip_prefix("forecast_")
            .and_then(|rest| rest.strip_suffix(".png"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if (RUN_FILES.contains(&name.as_str()) || forecast_plot) && entry.path().is_file() {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io("remove", entry.path(), e))?;
        }
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let (out, mut file) = AtomicFile::create(path)?;
    file.write_all(bytes)
        .map_err(|e| Error::io("write", path, e))?;
    out.commit(file)
}

impl RunConfig {
    /// The config of a run that trains `train` on `data`, read from `data_path` (kept as given
    /// where it cannot be made absolute): the recipe, the variables and the training split's
    /// statistics come from `data`.
    pub fn new(train: TrainConfig, data_path: impl Into<PathBuf>, data: &Dataset) -> Result<Self> {
        let data_path = data_path.into();
        let normalizer = crate::data::batch::training_normalizer(data, train.split)?;
        Ok(Self {
            format_version: RUN_FORMAT_VERSION,
            chaoscast_version: env!("CARGO_PKG_VERSION").to_string(),
            train,
            data_path: std::fs::canonicalize(&data_path).unwrap_or(data_path),
            data: data.meta.clone(),
            names: data.names.clone(),
            normalizer,
        })
    }

    /// Saves `config.json`.
    pub fn save(&self, run: &Path) -> Result<()> {
        let json =
            serde_json::to_string_pretty(self).map_err(|e| Error::storage(config_path(run), e))?;
        write_atomic(&config_path(run), json.as_bytes())
    }

    /// Loads `config.json` from a run folder.
    pub fn load(run: &Path) -> Result<Self> {
        Self::load_file(&config_path(run))
    }

    /// Loads a run config from any path.
    pub fn load_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        let cfg: Self = serde_json::from_str(&text)
            .map_err(|e| Error::storage(path, format!("not a chaoscast run config ({e})")))?;
        if cfg.format_version != RUN_FORMAT_VERSION {
            return Err(Error::storage(
                path,
                format!(
                    "run format {} is not the supported {RUN_FORMAT_VERSION}",
                    cfg.format_version
                ),
            ));
        }
        Ok(cfg)
    }
}

/// Saves a model as `model.mpk`.
pub fn save_model<B: Backend>(model: Model<B>, run: &Path) -> Result<()> {
    let path = model_path(run);
    let bytes = NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
        .record(model.into_record(), ())
        .map_err(|e| Error::storage(&path, format!("cannot encode the model ({e})")))?;
    write_atomic(&path, &bytes)
}

/// Builds the run's model on `device` with its saved weights, as it computes the function it was
/// trained to compute: under weight splitting, its grouped view ([`crate::bio::inference_view`]).
/// This is the model to forecast and evaluate with.
pub fn load_model<B: Backend>(cfg: &RunConfig, run: &Path, device: &B::Device) -> Result<Model<B>> {
    Ok(crate::bio::inference_view(
        load_weights(cfg, run, device)?,
        &cfg.train.bio,
    ))
}

/// Builds the run's model on `device` and loads its saved weights as stored: under weight
/// splitting these are the ungrouped weights W, which compute another function than the trained
/// one; [`load_model`] gives the trained function.
pub fn load_weights<B: Backend>(
    cfg: &RunConfig,
    run: &Path,
    device: &B::Device,
) -> Result<Model<B>> {
    let path = model_path(run);
    let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
    let record = NamedMpkBytesRecorder::<FullPrecisionSettings>::default()
        .load(bytes, device)
        .map_err(|e| Error::storage(&path, format!("not a model of this run ({e})")))?;
    cfg.train
        .model
        .skeleton::<B>(device)?
        .load_checked(record, "model in model.mpk")
}

/// Saves the checkpoint of a run configured by `cfg`.
pub fn save_checkpoint<B: AutodiffBackend>(
    state: &TrainState<B>,
    cfg: &TrainConfig,
    run: &Path,
) -> Result<()> {
    write_atomic(&checkpoint_path(run), &checkpoint::encode(state, cfg)?)
}

/// Loads a run's checkpoint onto `device`.
pub fn load_checkpoint<B: AutodiffBackend>(
    cfg: &TrainConfig,
    run: &Path,
    device: &B::Device,
) -> Result<TrainState<B>> {
    let path = checkpoint_path(run);
    let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
    checkpoint::decode(&bytes, cfg, device).map_err(|e| match e {
        Error::InvalidConfig { reason, .. } => Error::storage(&path, reason),
        other => other,
    })
}

/// Writes the epoch log as CSV.
pub fn save_metrics(history: &[EpochMetrics], run: &Path) -> Result<()> {
    let mut csv = String::from("epoch,train_loss,val_loss,val_nrmse,lr,seconds,rejuvenated\n");
    for m in history {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            m.epoch, m.train_loss, m.val_loss, m.val_nrmse, m.lr, m.seconds, m.rejuvenated
        ));
    }
    write_atomic(&metrics_path(run), csv.as_bytes())
}

/// Reads the epoch log back.
pub fn load_metrics(run: &Path) -> Result<Vec<EpochMetrics>> {
    let path = metrics_path(run);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("read", &path, e))?;
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let num = |i: usize| -> Result<f64> {
                f.get(i)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| Error::storage(&path, format!("bad line '{line}'")))
            };
            Ok(EpochMetrics {
                epoch: num(0)? as usize,
                train_loss: num(1)?,
                val_loss: num(2)?,
                val_nrmse: num(3)?,
                lr: num(4)?,
                seconds: num(5)?,
                // Absent in logs written before rejuvenation existed.
                rejuvenated: f.get(6).and_then(|v| v.parse().ok()).unwrap_or(0),
            })
        })
        .collect()
}

/// The observer that keeps a run folder: after every epoch it writes the best model (when the
/// epoch improved on it), `metrics.csv` and the checkpoint, then hands the epoch on to `inner`
/// (a progress display, or [`crate::train::state::Silent`]), whose error stops the run with the
/// epoch saved.
pub struct RunFolder<'a, O> {
    folder: PathBuf,
    cfg: &'a TrainConfig,
    inner: O,
}

impl<'a, O> RunFolder<'a, O> {
    /// Starts a new run in `folder`: creates it (it must be absent or empty), and writes
    /// `config.json` from `config` first, so that a run stopped early still has everything
    /// evaluation needs. `config.train` is the config training must be given.
    pub fn create(folder: impl Into<PathBuf>, config: &'a RunConfig, inner: O) -> Result<Self> {
        let folder = folder.into();
        let non_empty = folder.read_dir().is_ok_and(|mut d| d.next().is_some());
        if folder.is_file() || non_empty {
            return Err(Error::storage(
                &folder,
                "is not an empty folder; a new run needs one (RunFolder::resume continues a run)",
            ));
        }
        std::fs::create_dir_all(&folder).map_err(|e| Error::io("create", &folder, e))?;
        config.save(&folder)?;
        Ok(Self::resume(folder, &config.train, inner))
    }

    /// Keeps an existing run folder whose `config.json` holds `cfg` (written by
    /// [`RunFolder::create`] or `chaoscast train`), e.g. to continue it from its checkpoint
    /// ([`load_checkpoint`], [`crate::train::trainer::resume`]).
    pub fn resume(folder: impl Into<PathBuf>, cfg: &'a TrainConfig, inner: O) -> Self {
        Self {
            folder: folder.into(),
            cfg,
            inner,
        }
    }

    /// The folder.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// The observer it hands each epoch on to.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// Gives the inner observer back.
    pub fn into_inner(self) -> O {
        self.inner
    }
}

impl<B: AutodiffBackend, O: Observer<B>> Observer<B> for RunFolder<'_, O> {
    fn step_done(&mut self, epoch: usize, step: usize, steps: usize, loss: f64) {
        self.inner.step_done(epoch, step, steps, loss);
    }

    fn epoch_done(&mut self, state: &TrainState<B>, epochs: usize, improved: bool) -> Result<()> {
        if improved {
            save_model(state.best.clone(), &self.folder)?;
        }
        save_metrics(&state.history, &self.folder)?;
        save_checkpoint(state, self.cfg, &self.folder)?;
        self.inner.epoch_done(state, epochs, improved)
    }
}

//! Checkpoints: a [`TrainState`] as one self-describing byte string, so a run folder's
//! `checkpoint.bin` can be replaced atomically in one rename.
//!
//! Layout: the magic line `chaoscast-checkpoint 1\n`, then four length-prefixed (u64 little
//! endian) sections: a JSON header (chaoscast and Burn versions, normalisation statistics, model
//! config, optimizer, history, best epoch), the current
//! model, the optimizer state and the best model, the last three as Burn named MessagePack
//! records (full precision, device-independent). Decoding checks the header against the run's
//! config and every parameter's shape against the model the config builds, so a checkpoint of
//! another run is an error, not a silently wrong model.

use burn::module::Module;
use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Record, Recorder};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use super::trainer::{EpochMetrics, OptimizerKind, OptimizerState, TrainConfig, TrainState};
use crate::bio::fuzzy::FuzzyFactors;
use crate::data::normalize::Normalizer;
use crate::error::{Error, Result};
use crate::models::{Model, ModelConfig};

const MAGIC: &[u8] = b"chaoscast-checkpoint 2\n";
const MAGIC_V1: &[u8] = b"chaoscast-checkpoint 1\n";

/// The Burn release the records are written with (pinned in Cargo.toml).
pub const BURN_VERSION: &str = "0.21.0";

#[derive(Serialize, Deserialize)]
struct Header {
    chaoscast_version: String,
    burn_version: String,
    normalizer: Normalizer,
    model: ModelConfig,
    optimizer: OptimizerKind,
    history: Vec<EpochMetrics>,
    best_epoch: usize,
}

type Rec = NamedMpkBytesRecorder<FullPrecisionSettings>;

fn encode_record<B: AutodiffBackend, R: Record<B>>(what: &str, record: R) -> Result<Vec<u8>> {
    Recorder::<B>::record(&Rec::default(), record, ())
        .map_err(|e| Error::config("checkpoint", format!("cannot encode the {what} ({e})")))
}

fn decode_record<B: AutodiffBackend, R: Record<B>>(
    what: &str,
    bytes: &[u8],
    device: &B::Device,
) -> Result<R> {
    Recorder::<B>::load(&Rec::default(), bytes.to_vec(), device)
        .map_err(|e| corrupt(format!("its {what} cannot be decoded ({e})")))
}

fn corrupt(why: impl Into<String>) -> Error {
    Error::config(
        "checkpoint",
        format!(
            "it is damaged or not a chaoscast checkpoint: {}",
            why.into()
        ),
    )
}

/// Encodes `state` of a run configured by `cfg`.
pub fn encode<B: AutodiffBackend>(state: &TrainState<B>, cfg: &TrainConfig) -> Result<Vec<u8>> {
    let header = Header {
        chaoscast_version: env!("CARGO_PKG_VERSION").into(),
        burn_version: BURN_VERSION.into(),
        normalizer: state.normalizer.clone(),
        model: cfg.model.clone(),
        optimizer: cfg.optimizer,
        history: state.history.clone(),
        best_epoch: state.best_epoch,
    };
    let header = serde_json::to_vec(&header)
        .map_err(|e| Error::config("checkpoint", format!("cannot encode the header ({e})")))?;
    let model = encode_record::<B, _>("model", state.model.clone().into_record())?;
    let optimizer = match &state.optimizer {
        OptimizerState::Sgd(r) => encode_record::<B, _>("optimizer state", r.clone())?,
        OptimizerState::Adam(r) => encode_record::<B, _>("optimizer state", r.clone())?,
    };
    let best = encode_record::<B, _>("best model", state.best.clone().into_record())?;
    let fuzzy = state
        .fuzzy
        .as_ref()
        .map(FuzzyFactors::to_bytes)
        .unwrap_or_default();
    let mut out = MAGIC.to_vec();
    for section in [&header, &model, &optimizer, &best, &fuzzy] {
        out.extend_from_slice(&(section.len() as u64).to_le_bytes());
        out.extend_from_slice(section);
    }
    Ok(out)
}

/// Decodes a checkpoint of a run configured by `cfg`, onto `device`.
pub fn decode<B: AutodiffBackend>(
    bytes: &[u8],
    cfg: &TrainConfig,
    device: &B::Device,
) -> Result<TrainState<B>> {
    let (mut rest, names): (&[u8], &[&str]) = if let Some(rest) = bytes.strip_prefix(MAGIC) {
        (
            rest,
            &[
                "header",
                "model",
                "optimizer state",
                "best model",
                "fuzzy factors",
            ],
        )
    } else if let Some(rest) = bytes.strip_prefix(MAGIC_V1) {
        (rest, &["header", "model", "optimizer state", "best model"])
    } else {
        return Err(corrupt("it does not start with the checkpoint marker"));
    };
    let mut sections = Vec::with_capacity(names.len());
    for name in names {
        let (len, tail) = rest
            .split_first_chunk::<8>()
            .ok_or_else(|| corrupt(format!("it ends before the {name}")))?;
        let len = usize::try_from(u64::from_le_bytes(*len)).unwrap_or(usize::MAX);
        if tail.len() < len {
            return Err(corrupt(format!("it ends inside the {name}")));
        }
        sections.push(&tail[..len]);
        rest = &tail[len..];
    }
    if !rest.is_empty() {
        return Err(corrupt("it has bytes after the last section"));
    }
    let header: Header = serde_json::from_slice(sections[0])
        .map_err(|e| corrupt(format!("its header is unreadable ({e})")))?;
    if serde_json::to_value(&header.model).ok() != serde_json::to_value(&cfg.model).ok() {
        return Err(Error::config(
            "checkpoint",
            format!(
                "it was written for another model ({}) than the run's config.json describes ({})",
                serde_json::to_string(&header.model).unwrap_or_default(),
                serde_json::to_string(&cfg.model).unwrap_or_default()
            ),
        ));
    }
    if header.optimizer != cfg.optimizer {
        return Err(Error::config(
            "checkpoint",
            "it holds the state of another optimizer than the run's config.json names",
        ));
    }
    if header.best_epoch == 0 || header.best_epoch > header.history.len() {
        return Err(corrupt("its best epoch is outside its history"));
    }
    let load_model = |what: &str, bytes: &[u8]| -> Result<Model<B>> {
        let record = decode_record::<B, _>(what, bytes, device)?;
        cfg.model.skeleton::<B>(device)?.load_checked(record, what)
    };
    let model = load_model("model", sections[1])?;
    let optimizer = match cfg.optimizer {
        OptimizerKind::Sgd => OptimizerState::Sgd(decode_record::<B, _>(
            "optimizer state",
            sections[2],
            device,
        )?),
        OptimizerKind::Adam => OptimizerState::Adam(decode_record::<B, _>(
            "optimizer state",
            sections[2],
            device,
        )?),
    };
    let best = load_model("best model", sections[3])?;
    let fuzzy = match sections.get(4) {
        Some(bytes) if !bytes.is_empty() => Some(FuzzyFactors::from_bytes(bytes)?),
        _ => None,
    };
    Ok(TrainState {
        model,
        optimizer,
        history: header.history,
        best,
        best_epoch: header.best_epoch,
        normalizer: header.normalizer,
        fuzzy,
    })
}

//! The cells an experiment file stands for: its variants (with grids of listed values expanded),
//! each variant's settings as they apply to each model, and every cell's keyed folder.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::cli::choices::{BioName, DecoderName, ModelName, PresetName};
use crate::cli::train::{Settings, definition, fnv1a};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Experiment {
    pub(super) datasets: Vec<PathBuf>,
    pub(super) models: Vec<ModelName>,
    pub(super) seeds: Vec<u64>,
    #[serde(default)]
    pub(super) train: toml::Table,
    pub(super) variants: Vec<toml::Table>,
    /// Judge every cell's climate too (`eval --climate` with its defaults).
    #[serde(default)]
    pub(super) climate: bool,
}

pub(super) struct Variant {
    pub(super) name: String,
    pub(super) settings: Settings,
}

/// The variants one `[[variants]]` entry stands for: itself, or, where some keys hold lists, one
/// variant per combination of their values (the Cartesian product, keys in alphabetical order),
/// named `NAME+key=value+key=value`.
pub(super) fn expand(name: &str, table: &toml::Table) -> Result<Vec<(String, toml::Table)>> {
    let mut out = vec![(name.to_string(), toml::Table::new())];
    for (key, value) in table {
        match value {
            toml::Value::Array(values) => {
                if values.is_empty() {
                    bail!("variant '{name}': {key} is an empty list (give at least one value)");
                }
                out = out
                    .into_iter()
                    .flat_map(|(n, t)| {
                        values.iter().map(move |v| {
                            let mut t = t.clone();
                            t.insert(key.clone(), v.clone());
                            let shown = match v {
                                toml::Value::String(text) => text.clone(),
                                other => other.to_string(),
                            };
                            (format!("{n}+{key}={shown}"), t)
                        })
                    })
                    .collect();
            }
            single => {
                for (_, t) in &mut out {
                    t.insert(key.clone(), single.clone());
                }
            }
        }
    }
    Ok(out)
}

pub(super) fn settings_of(table: &toml::Table, what: &str) -> Result<Settings> {
    table
        .clone()
        .try_into::<Settings>()
        .map_err(|e| anyhow::anyhow!("{what}: {}", e.message().trim_end_matches('.')))
}

/// One cell of the experiment, in the stable order datasets × models × variants × seeds.
pub(super) struct Planned {
    pub(super) index: usize,
    pub(super) dataset: String,
    pub(super) model: ModelName,
    pub(super) variant: String,
    pub(super) seed: u64,
    /// The cell's settings, or why its model skips the variant.
    pub(super) settings: std::result::Result<Settings, &'static str>,
    /// Where it trains (none for a skipped cell).
    pub(super) folder: Option<PathBuf>,
    /// Everything that defines it (see [`definition`]).
    pub(super) definition: String,
}

/// Every cell of the experiment with its settings and keyed folder, trained or not.
pub(super) fn plan_cells(
    exp: &Experiment,
    variants: &[Variant],
    shared: &Settings,
    output: &Path,
) -> Result<Vec<Planned>> {
    let mut plan = Vec::new();
    for data in &exp.datasets {
        let dataset = data
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into());
        let data_fnv1a =
            fnv1a(&std::fs::read(data).with_context(|| format!("cannot read {}", data.display()))?);
        for model in &exp.models {
            for variant in variants {
                for &seed in &exp.seeds {
                    let label = format!("{dataset} {model} {} seed {seed}", variant.name);
                    let settings = Settings {
                        data: Some(data.clone()),
                        model: Some(*model),
                        seed: Some(seed),
                        ..Settings::default()
                    }
                    .or(variant.settings.clone())
                    .or(shared.clone());
                    let mut planned = Planned {
                        index: plan.len(),
                        dataset: dataset.clone(),
                        model: *model,
                        variant: variant.name.clone(),
                        seed,
                        settings: for_model(*model, settings),
                        folder: None,
                        definition: String::new(),
                    };
                    if let Ok(settings) = &mut planned.settings {
                        // The folder is keyed by everything that defines the cell, so a changed
                        // setting (or dataset, or default) trains a new cell, never reuses one.
                        let definition = definition(settings, data_fnv1a)
                            .with_context(|| format!("cell {label}"))?;
                        let folder = output
                            .join("cells")
                            .join(&dataset)
                            .join(model.as_str())
                            .join(&variant.name)
                            .join(format!(
                                "seed-{seed}-{:012x}",
                                fnv1a(definition.as_bytes()) >> 16
                            ));
                        settings.output = Some(folder.clone());
                        planned.folder = Some(folder);
                        planned.definition = definition;
                    }
                    plan.push(planned);
                }
            }
        }
    }
    Ok(plan)
}

/// The settings as they apply to `model`: the ESN's reservoir settings are dropped for the other
/// models, the FDN's `residual` and `mixing` for the others, `layers` for the FDN and the ESN, and `window-loss` for all but the
/// autoregressive LSTM and GRU, so one experiment can hold them all. A cell whose variant asks for what its model does not
/// have is skipped, with the reason: a bio mechanism for the ESN (its readout is fitted in closed
/// form) or the autoregressive decoder for the ESN.
fn for_model(model: ModelName, mut s: Settings) -> Result<Settings, &'static str> {
    let model = model.as_str();
    let autoregressive = match s.decoder {
        Some(decoder) => decoder == DecoderName::Autoregressive,
        // The default preset's neural models have the autoregressive decoder.
        None => matches!(s.preset, None | Some(PresetName::Default)) && model != "esn",
    };
    if autoregressive && model == "esn" {
        return Err(
            "the ESN forecasts closed loop already; the decoder is for lstm, gru, fdn and transformer",
        );
    }
    if !autoregressive {
        s.strategy = None;
        s.tf_sampling = None;
        s.tf_k = None;
    }
    if model != "fdn" {
        s.residual = None;
        s.mixing = None;
    }
    if matches!(model, "fdn" | "esn") {
        s.layers = None;
    }
    if !(autoregressive && matches!(model, "lstm" | "gru")) {
        s.window_loss = None;
    }
    if model == "esn" {
        let bio = s.bio.is_some_and(|b| b != BioName::None) || s.sets_a_mechanism();
        if bio {
            return Err(
                "the ESN is fitted in closed form, so the bio mechanisms have nothing to act on",
            );
        }
        return Ok(s);
    }
    s.spectral_radius = None;
    s.leak = None;
    s.ridge = None;
    s.input_scaling = None;
    s.sparsity = None;
    s.esn_search = None;
    Ok(s)
}

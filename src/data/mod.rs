//! Datasets: recipes and generation ([`recipe`]), Parquet/CSV storage with the recipe carried
//! inside the file ([`store`]), the in-memory [`Dataset`], and the forecasting pipeline's first
//! steps: splits and windows ([`window`]) and z-scoring ([`normalize`]).
//!
//! Generation sits between the systems and the forecasting pipeline: a recipe is integrated into
//! a [`Dataset`], written atomically, and later loaded back with its recipe by training.

pub mod normalize;
pub mod recipe;
pub mod store;
pub mod window;

use serde::{Deserialize, Serialize};

pub use recipe::{Recipe, RecipeSpec, generate};
pub use store::{Format, read_dataset, write_dataset};

use crate::error::{Error, Result};
use crate::systems::lyapunov::{LyapunovConfig, LyapunovEstimate};

/// Version of the metadata layout written into dataset files.
pub const DATASET_FORMAT_VERSION: u32 = 1;

/// What travels with a dataset file: the recipe, the crate version and, when measured, the
/// largest Lyapunov exponent with the settings that measured it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DatasetMeta {
    /// Metadata layout version ([`DATASET_FORMAT_VERSION`]).
    pub format_version: u32,
    /// The chaoscast version that wrote the file.
    pub chaoscast_version: String,
    /// The generation recipe.
    pub recipe: Recipe,
    /// The measured exponent, when `--lyapunov` was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lyapunov: Option<LyapunovEstimate>,
    /// The estimator's settings for [`Self::lyapunov`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lyapunov_config: Option<LyapunovConfig>,
}

impl DatasetMeta {
    /// Metadata for a freshly generated dataset.
    pub fn new(recipe: Recipe) -> Self {
        Self {
            format_version: DATASET_FORMAT_VERSION,
            chaoscast_version: env!("CARGO_PKG_VERSION").to_string(),
            recipe,
            lyapunov: None,
            lyapunov_config: None,
        }
    }

    /// The forecast horizon in steps (SPEC.md §3): `flag` if given, else the recipe's `horizon`,
    /// else one Lyapunov time ceil(1 / (λ·Δt)) from the stored exponent; otherwise an error
    /// asking for `--horizon`.
    pub fn horizon(&self, flag: Option<usize>) -> Result<usize> {
        let h = flag
            .or(self.recipe.horizon)
            .or_else(|| {
                self.exponent()
                    .map(|l| (1.0 / (l * self.recipe.dt)).ceil().max(1.0) as usize)
            })
            .ok_or_else(|| {
                Error::config(
                    "horizon",
                    "the dataset carries no horizon and no Lyapunov exponent; pass --horizon \
                     (or generate with --lyapunov)",
                )
            })?;
        if h == 0 {
            return Err(Error::config("horizon", "must be at least 1 step"));
        }
        Ok(h)
    }

    /// λ·Δt, which converts steps into Lyapunov times, when the exponent is known.
    pub fn dt_lambda(&self) -> Option<f64> {
        self.exponent().map(|l| l * self.recipe.dt)
    }

    /// The exponent to use: the measured one if present, else the recipe's.
    pub fn exponent(&self) -> Option<f64> {
        self.lyapunov
            .as_ref()
            .map(|l| l.mean)
            .or(self.recipe.lyapunov)
    }
}

/// A sampled trajectory: `t`, and one column per variable, stored row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Recipe and provenance.
    pub meta: DatasetMeta,
    /// Variable names, in column order.
    pub names: Vec<String>,
    /// Sample times, from 0 at the first recorded sample.
    pub t: Vec<f64>,
    /// Values, `len × vars`, row-major.
    pub values: Vec<f64>,
}

/// Summary statistics of one variable.
#[derive(Clone, Debug, PartialEq)]
pub struct VarStats {
    /// Variable name.
    pub name: String,
    /// Mean.
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.t.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }

    /// Number of variables.
    pub fn vars(&self) -> usize {
        self.names.len()
    }

    /// One sample (all variables).
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.vars()..(i + 1) * self.vars()]
    }

    /// One variable over time.
    pub fn column(&self, j: usize) -> Vec<f64> {
        self.values
            .iter()
            .skip(j)
            .step_by(self.vars())
            .copied()
            .collect()
    }

    /// Mean, standard deviation, minimum and maximum of every variable.
    pub fn stats(&self) -> Vec<VarStats> {
        self.names
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let col = self.column(j);
                let n = col.len() as f64;
                let mean = col.iter().sum::<f64>() / n;
                let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
                VarStats {
                    name: name.clone(),
                    mean,
                    std: var.sqrt(),
                    min: col.iter().copied().fold(f64::INFINITY, f64::min),
                    max: col.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systems::SystemName;

    #[test]
    fn horizon_comes_from_flag_recipe_or_exponent() {
        let mut spec = RecipeSpec::for_system(SystemName::Thomas);
        spec.horizon = Some(41);
        let mut meta = DatasetMeta::new(spec.resolve().unwrap());
        assert_eq!(meta.horizon(Some(7)).unwrap(), 7);
        assert_eq!(meta.horizon(None).unwrap(), 41);
        meta.recipe.horizon = None;
        let err = meta.horizon(None).unwrap_err().to_string();
        assert!(err.contains("--horizon"), "{err}");
        // λ = 0.49, Δt = 0.0497: 1 / (λ·Δt) = 41.06 → 42 steps.
        meta.recipe.lyapunov = Some(0.49);
        assert_eq!(meta.horizon(None).unwrap(), 42);
        // λ·Δt ≈ 2 would give less than one step: at least 1.
        meta.recipe.lyapunov = Some(40.0);
        assert_eq!(meta.horizon(None).unwrap(), 1);
    }
}

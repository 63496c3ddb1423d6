//! Datasets: recipes and generation ([`recipe`]), Parquet/CSV storage with the recipe carried
//! inside the file ([`store`]), the in-memory [`Dataset`], and the forecasting pipeline's first
//! steps: splits and windows ([`window`]) and z-scoring ([`normalize`]).
//!
//! Generation sits between the systems and the forecasting pipeline: a recipe is integrated into
//! a [`Dataset`], written atomically, and later loaded back with its recipe by training.

pub mod batch;
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

    /// The rows of each trajectory, back to back ([`Recipe::trajectories`] of `len / n` rows).
    pub fn segments(&self) -> Vec<std::ops::Range<usize>> {
        let n = self.meta.recipe.trajectories.max(1);
        let rows = self.len() / n;
        (0..n).map(|k| k * rows..(k + 1) * rows).collect()
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

    /// The variables matching `patterns`, in the dataset's column order. A pattern is a name
    /// (`x`, `X03`) or a prefix ending in `*` (`X*`: the slow variables of two-scale Lorenz-96);
    /// each must match at least one variable.
    pub fn select_names(&self, patterns: &[String]) -> Result<Vec<String>> {
        let matches = |p: &str, name: &str| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == p,
        };
        if let Some(p) = patterns
            .iter()
            .find(|p| !self.names.iter().any(|n| matches(p, n)))
        {
            let shown: Vec<&str> = self.names.iter().take(12).map(String::as_str).collect();
            return Err(Error::config(
                "variables",
                format!(
                    "'{p}' matches no variable of the dataset ({}{})",
                    shown.join(", "),
                    if self.names.len() > 12 { ", ..." } else { "" }
                ),
            ));
        }
        Ok(self
            .names
            .iter()
            .filter(|n| patterns.iter().any(|p| matches(p, n)))
            .cloned()
            .collect())
    }

    /// A dataset of only the variables `names` (in that order), which must all be present.
    pub fn select(&self, names: &[String]) -> Result<Dataset> {
        let columns: Vec<usize> = names
            .iter()
            .map(|n| {
                self.names.iter().position(|m| m == n).ok_or_else(|| {
                    Error::config(
                        "variables",
                        format!(
                            "the dataset has no variable '{n}' (it has {})",
                            self.names.join(", ")
                        ),
                    )
                })
            })
            .collect::<Result<_>>()?;
        if columns.iter().copied().eq(0..self.vars()) {
            return Ok(self.clone());
        }
        let values = (0..self.len())
            .flat_map(|i| columns.iter().map(move |&j| (i, j)))
            .map(|(i, j)| self.values[i * self.vars() + j])
            .collect();
        Ok(Dataset {
            meta: self.meta.clone(),
            names: names.to_vec(),
            t: self.t.clone(),
            values,
        })
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
        // At the default parameters the recipe carries the system's measured exponent.
        assert_eq!(meta.recipe.lyapunov, Some(0.4918));
        assert_eq!(meta.horizon(None).unwrap(), 41);
        meta.recipe.lyapunov = None;
        let err = meta.horizon(None).unwrap_err().to_string();
        assert!(err.contains("--horizon"), "{err}");
        // λ = 0.49, Δt = 0.0497: 1 / (λ·Δt) = 41.06 → 42 steps.
        meta.recipe.lyapunov = Some(0.49);
        assert_eq!(meta.horizon(None).unwrap(), 42);
        // λ·Δt ≈ 2 would give less than one step: at least 1.
        meta.recipe.lyapunov = Some(40.0);
        assert_eq!(meta.horizon(None).unwrap(), 1);
    }

    #[test]
    fn selecting_variables_by_name_and_prefix() {
        let meta = DatasetMeta::new(
            RecipeSpec::for_system(SystemName::Thomas)
                .resolve()
                .unwrap(),
        );
        let data = Dataset {
            meta,
            names: vec!["X0".into(), "X1".into(), "Y0".into()],
            t: vec![0.0, 1.0],
            values: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
        };
        let names = data.select_names(&["X*".into()]).unwrap();
        assert_eq!(names, ["X0", "X1"]);
        let slow = data.select(&names).unwrap();
        assert_eq!(slow.values, [1.0, 2.0, 4.0, 5.0]);
        let picked = data.select(&["Y0".into(), "X0".into()]).unwrap();
        assert_eq!(picked.values, [3.0, 1.0, 6.0, 4.0]);
        let err = data.select_names(&["Z*".into()]).unwrap_err().to_string();
        assert!(err.contains("'Z*' matches no variable"), "{err}");
        assert!(data.select(&["Q".into()]).is_err());
    }
}

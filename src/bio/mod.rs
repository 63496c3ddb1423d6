//! The three "synaptic diversity" mechanisms of Hofmann et al. (Nature Communications 2025), as
//! SPEC.md §6 records what the authors' code did: fuzzy learning rates ([`fuzzy`]), weight
//! rejuvenation ([`rejuvenate`]) and weight splitting ([`split`]), each optional, over the
//! parameters [`coverage`] selects.
//!
//! | parameters | FL, WR | WS | scope `reference` |
//! | --- | --- | --- | --- |
//! | Linear weights (attention projections, transformer layers, input projection, heads) | yes | yes, with their bias; never the output head | yes |
//! | Conv1d kernels (FDN) | yes | yes, with their bias | yes |
//! | LSTM/GRU input and recurrent gate weights | yes | yes (each gate's pre-activation, with the gate biases) | no |
//! | biases | no | only as part of a split layer | — |
//! | layer-norm parameters | no | no | — |
//!
//! "Output head" means every layer named `head`: the recurrent and transformer forecasters' last
//! linear layer and each FDN segment's flatten-to-horizon layer.

pub mod coverage;
pub mod fuzzy;
pub mod rejuvenate;
pub mod split;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, ensure_positive};
use crate::models::Model;

/// Which parameters the mechanisms reach.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Everything in the coverage table (default).
    #[default]
    All,
    /// Only what the authors' PyTorch package reached: linear and convolution layers, not the
    /// recurrent gate weights.
    Reference,
}

/// The distribution of fuzzy learning-rate factors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FuzzyDistribution {
    /// U(1 − ν, 1 + ν) (default, the authors' code).
    #[default]
    Uniform,
    /// N(1, ν²), clipped at 0.
    Normal,
    /// exp(N(0, ν²)).
    LogNormal,
}

/// What the fuzzy factors multiply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FuzzyTarget {
    /// Each weight's gradient, before the optimizer (default: the authors' code). Under SGD
    /// this is a per-weight learning rate; Adam divides each element's update by the root of
    /// its own squared-gradient average, which cancels a fixed factor but for ε and clipping.
    #[default]
    Gradient,
    /// Each weight's step, after the optimizer: w ← w₀ + f ⊙ Δw. A per-weight learning rate
    /// under any optimizer; under SGD with momentum and no weight decay or clipping it is the
    /// gradient form up to rounding.
    Update,
}

impl FuzzyTarget {
    fn is_gradient(&self) -> bool {
        *self == Self::Gradient
    }
}

/// Fuzzy learning rates: fixed per-element factors on the gradients (or the steps).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FuzzyConfig {
    /// Spread ν (default 0.5: the paper's tuned τ as the authors' scripts passed it).
    pub spread: f64,
    /// The factors' distribution (default uniform).
    #[serde(default)]
    pub distribution: FuzzyDistribution,
    /// What the factors multiply (default the gradient). Left out of a config when it is the
    /// default, so that runs and compare cells from before the option keep their keys.
    #[serde(default, skip_serializing_if = "FuzzyTarget::is_gradient")]
    pub target: FuzzyTarget,
}

impl Default for FuzzyConfig {
    fn default() -> Self {
        Self {
            spread: 0.5,
            distribution: FuzzyDistribution::Uniform,
            target: FuzzyTarget::Gradient,
        }
    }
}

/// Weight rejuvenation: re-draw small weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RejuvenationConfig {
    /// Distance d_re: σ = max|w| / d_re (default 6, the paper's tuned value).
    pub distance: f64,
    /// The paper's one-sided probability ½·erfc instead of the authors' two-sided erfc.
    #[serde(default)]
    pub one_sided: bool,
    /// Apply after every N optimizer steps (default 1).
    #[serde(default = "one")]
    pub every: usize,
    /// Scale the re-draw probability by the step's learning rate over the initial one, so the
    /// rejuvenation anneals with the schedule and late, small-rate epochs can repair what it
    /// re-draws (default off: the paper's full-strength rejuvenation at every step).
    #[serde(default)]
    pub lr_scaled: bool,
}

fn one() -> usize {
    1
}

impl Default for RejuvenationConfig {
    fn default() -> Self {
        Self {
            distance: 6.0,
            one_sided: false,
            every: 1,
            lr_scaled: false,
        }
    }
}

/// Weight splitting: groups of Γ adjacent outputs summed and repeated.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplittingConfig {
    /// Group size Γ (default 2).
    pub groups: usize,
}

impl Default for SplittingConfig {
    fn default() -> Self {
        Self { groups: 2 }
    }
}

/// Which mechanisms a run uses; `BioConfig::default()` is none.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BioConfig {
    /// Fuzzy learning rates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuzzy_lr: Option<FuzzyConfig>,
    /// Weight rejuvenation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejuvenation: Option<RejuvenationConfig>,
    /// Weight splitting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splitting: Option<SplittingConfig>,
    /// Which parameters they reach (default all).
    #[serde(default)]
    pub scope: Scope,
}

/// The named presets of SPEC.md §6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BioPreset {
    /// No mechanism.
    None,
    /// The paper's tuned experiments: FL ν = 0.5 and WR d_re = 6, no WS.
    PaperTuned,
    /// The paper's default-hyperparameter experiments: FL ν = 0.09, WR d_re = 14, WS Γ = 2.
    PaperDefault,
}

impl std::str::FromStr for BioPreset {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Self::None),
            "paper-tuned" => Ok(Self::PaperTuned),
            "paper-default" => Ok(Self::PaperDefault),
            other => Err(Error::config(
                "bio",
                format!("unknown preset '{other}'; use none, paper-tuned or paper-default"),
            )),
        }
    }
}

impl BioConfig {
    /// A named preset with scope `all`.
    pub fn preset(preset: BioPreset) -> Self {
        match preset {
            BioPreset::None => Self::default(),
            BioPreset::PaperTuned => Self {
                fuzzy_lr: Some(FuzzyConfig::default()),
                rejuvenation: Some(RejuvenationConfig::default()),
                splitting: None,
                scope: Scope::All,
            },
            BioPreset::PaperDefault => Self {
                fuzzy_lr: Some(FuzzyConfig {
                    spread: 0.09,
                    ..FuzzyConfig::default()
                }),
                rejuvenation: Some(RejuvenationConfig {
                    distance: 14.0,
                    ..RejuvenationConfig::default()
                }),
                splitting: Some(SplittingConfig { groups: 2 }),
                scope: Scope::All,
            },
        }
    }

    /// Whether any mechanism is on.
    pub fn is_active(&self) -> bool {
        self.fuzzy_lr.is_some() || self.rejuvenation.is_some() || self.splitting.is_some()
    }

    /// Checks every field (divisibility of layer widths by Γ is checked against the model, see
    /// [`split::check`]).
    pub fn validate(&self) -> Result<()> {
        if let Some(f) = &self.fuzzy_lr {
            ensure_positive("fl spread", f.spread)?;
            if f.distribution == FuzzyDistribution::Uniform && f.spread >= 1.0 {
                return Err(Error::config(
                    "fl spread",
                    format!(
                        "{} would allow zero or negative factors; uniform spreads must be below 1",
                        f.spread
                    ),
                ));
            }
        }
        if let Some(r) = &self.rejuvenation {
            ensure_positive("wr distance", r.distance)?;
            crate::error::ensure_counts(&[("wr every", r.every)])?;
        }
        if let Some(s) = &self.splitting
            && s.groups < 2
        {
            return Err(Error::config(
                "ws groups",
                format!("Γ = {} does not split anything; use 2 or more", s.groups),
            ));
        }
        Ok(())
    }
}

/// The model as it computes under `bio`: with weight splitting, its grouped view (see
/// [`split`]); otherwise the model itself. Evaluation and forecasting run this.
pub fn inference_view<B: Backend>(model: Model<B>, bio: &BioConfig) -> Model<B> {
    match &bio.splitting {
        Some(s) => {
            let coverage = coverage::Coverage::of(&model, bio.scope);
            split::split_model(model, &coverage, s.groups)
        }
        None => model,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default target is left out of a serialised config, so the configs (and `compare`'s
    /// cell keys, a hash of them) of runs made before the option are unchanged; a config without
    /// it reads as the gradient form, and the step form is written and read back.
    #[test]
    fn the_gradient_target_is_left_out_and_read_as_the_default() {
        let gradient = FuzzyConfig {
            spread: 0.09,
            ..FuzzyConfig::default()
        };
        assert_eq!(
            serde_json::to_string(&gradient).unwrap(),
            r#"{"spread":0.09,"distribution":"uniform"}"#
        );
        let old: FuzzyConfig = serde_json::from_str(r#"{"spread":0.09}"#).unwrap();
        assert_eq!(old, gradient);
        let update = FuzzyConfig {
            target: FuzzyTarget::Update,
            ..gradient
        };
        let text = serde_json::to_string(&update).unwrap();
        assert_eq!(
            text,
            r#"{"spread":0.09,"distribution":"uniform","target":"update"}"#
        );
        assert_eq!(serde_json::from_str::<FuzzyConfig>(&text).unwrap(), update);
    }
}

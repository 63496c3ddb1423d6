//! Recipes: everything needed to regenerate a dataset bit for bit, and [`generate`], which runs one.
//!
//! A recipe is read from a TOML file or assembled from command-line flags as a [`RecipeSpec`]
//! (every field optional but the system), then [`RecipeSpec::resolve`] fills in the system's
//! defaults and checks every field, giving a complete [`Recipe`].

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Dataset, DatasetMeta};
use crate::error::{Error, Result, ensure_non_negative, ensure_positive};
use crate::progress::{Progress, Scaled};
use crate::systems::integrate::{Integrator, Method, Tolerances, advance_by, sample_by};
use crate::systems::{Params, SystemName, perturbed_state};

/// A complete, validated generation recipe. It travels inside every dataset file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The system.
    pub system: SystemName,
    /// Every parameter of the system, defaults included.
    pub params: Params,
    /// Number of recorded samples.
    pub samples: usize,
    /// Sampling interval Δt.
    pub dt: f64,
    /// Time integrated and discarded before recording.
    pub transient: f64,
    /// Relative tolerance of the integrator.
    pub rtol: f64,
    /// Absolute tolerance of the integrator.
    pub atol: f64,
    /// Seed of the initial-state perturbation.
    pub seed: u64,
    /// Standard deviation of the Gaussian perturbation of the initial state.
    pub perturbation: f64,
    /// Forecast horizon in steps, when the recipe fixes one (the paper recipes do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon: Option<usize>,
    /// The largest Lyapunov exponent, when the recipe carries a measured value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lyapunov: Option<f64>,
    /// The integrator (DOP853 unless chosen; then left out, as in recipes before the choice).
    #[serde(default, skip_serializing_if = "Integrator::is_default")]
    pub integrator: Integrator,
    /// RK4's fixed step, which divides `dt`; only with `integrator = "rk4"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
    /// Trajectories in the file (default 1, then left out). Trajectory k starts from the
    /// initial state perturbed with seed `seed + k` (so it is the single trajectory the recipe
    /// with that seed gives), and each has `samples` rows after its own transient.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub trajectories: usize,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

/// A recipe as written in a TOML file or given by flags: the system, and any fields to override.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeSpec {
    /// The system (required in a file).
    pub system: Option<SystemName>,
    /// Parameters to override.
    #[serde(default)]
    pub params: Params,
    /// Number of samples (default 10,000).
    pub samples: Option<usize>,
    /// Sampling interval (default: the system's).
    pub dt: Option<f64>,
    /// Discarded transient (default: the system's).
    pub transient: Option<f64>,
    /// Relative tolerance (default 1e-10).
    pub rtol: Option<f64>,
    /// Absolute tolerance (default 1e-10).
    pub atol: Option<f64>,
    /// Seed (default 0).
    pub seed: Option<u64>,
    /// Perturbation amplitude (default 1e-3).
    pub perturbation: Option<f64>,
    /// Forecast horizon in steps.
    pub horizon: Option<usize>,
    /// Largest Lyapunov exponent.
    pub lyapunov: Option<f64>,
    /// Integrator (default dop853).
    pub integrator: Option<Integrator>,
    /// RK4's fixed step.
    pub step: Option<f64>,
    /// Trajectories (default 1).
    pub trajectories: Option<usize>,
}

impl RecipeSpec {
    /// A spec with only the system set.
    pub fn for_system(system: SystemName) -> Self {
        Self {
            system: Some(system),
            ..Self::default()
        }
    }

    /// Reads a TOML recipe file.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("read", path, e))?;
        let spec: Self = toml::from_str(&text)
            .map_err(|e| Error::storage(path, format!("not a valid recipe: {}", e.message())))?;
        if spec.system.is_none() {
            return Err(Error::storage(path, "the recipe does not name a system"));
        }
        Ok(spec)
    }

    /// Fills in defaults and validates, giving a complete recipe.
    pub fn resolve(&self) -> Result<Recipe> {
        let system = self
            .system
            .ok_or_else(|| Error::config("system", "no system given"))?;
        let defaults = system.defaults();
        let tol = Tolerances::default();
        let built = system.build(&self.params)?;
        // At the default parameters the exponent is known (measured once, SPEC.md §2); with
        // other parameters it must be given or measured (`--lyapunov`).
        let at_defaults = built.params() == system.build(&Params::default())?.params();
        if self.integrator == Some(Integrator::Rk4) {
            // A tolerance given for a fixed-step method would be silently ignored.
            for (key, value) in [("rtol", self.rtol), ("atol", self.atol)] {
                if value.is_some() {
                    return Err(Error::config(
                        key,
                        "RK4 integrates at a fixed step and has no tolerance; leave rtol and \
                         atol out (they are dop853's and dopri5's; RK4's accuracy is its step)",
                    ));
                }
            }
        }
        let recipe = Recipe {
            system,
            params: built.params(),
            samples: self.samples.unwrap_or(10_000),
            dt: self.dt.unwrap_or(defaults.dt),
            transient: self.transient.unwrap_or(defaults.transient),
            rtol: self.rtol.unwrap_or(tol.rtol),
            atol: self.atol.unwrap_or(tol.atol),
            seed: self.seed.unwrap_or(0),
            perturbation: self.perturbation.unwrap_or(1e-3),
            horizon: self.horizon,
            lyapunov: self.lyapunov.or(at_defaults.then_some(defaults.lyapunov)),
            integrator: self.integrator.unwrap_or_default(),
            step: self.step,
            trajectories: self.trajectories.unwrap_or(1),
        };
        recipe.validate()?;
        Ok(recipe)
    }
}

impl Recipe {
    /// Checks every field; returns the first bad one as [`Error::InvalidConfig`].
    pub fn validate(&self) -> Result<()> {
        ensure_positive("dt", self.dt)?;
        ensure_positive("rtol", self.rtol)?;
        ensure_positive("atol", self.atol)?;
        ensure_non_negative("transient", self.transient)?;
        ensure_non_negative("perturbation", self.perturbation)?;
        if self.samples == 0 {
            return Err(Error::config("samples", "must be at least 1"));
        }
        if self.trajectories == 0 {
            return Err(Error::config("trajectories", "must be at least 1"));
        }
        if self.horizon == Some(0) {
            return Err(Error::config("horizon", "must be at least 1 step"));
        }
        if let Some(l) = self.lyapunov {
            ensure_positive("lyapunov", l)?;
        }
        match (self.integrator, self.step) {
            (Integrator::Rk4, Some(step)) => {
                crate::systems::integrate::rk4_steps_per_sample(self.dt, step)?;
            }
            (Integrator::Rk4, None) => {
                return Err(Error::config(
                    "step",
                    "RK4 integrates at a fixed step; give one that divides dt (--step H)",
                ));
            }
            (other, Some(_)) => {
                return Err(Error::config(
                    "step",
                    format!(
                        "a fixed step is RK4's; {} chooses its own steps (use --integrator rk4)",
                        other.as_str()
                    ),
                ));
            }
            (_, None) => {}
        }
        self.system.build(&self.params).map(|_| ())
    }

    /// The integration method the recipe names.
    pub fn method(&self) -> Method {
        match (self.integrator, self.step) {
            (Integrator::Dop853, _) => Method::Dop853(self.tolerances()),
            (Integrator::Dopri5, _) => Method::Dopri5(self.tolerances()),
            (Integrator::Rk4, step) => Method::Rk4 {
                step: step.unwrap_or(self.dt),
            },
        }
    }

    /// The integrator tolerances.
    pub fn tolerances(&self) -> Tolerances {
        Tolerances {
            rtol: self.rtol,
            atol: self.atol,
        }
    }
}

/// Integrates the recipe's system: perturb the initial state with the seed, discard the
/// transient, then record `samples` states every `dt` (the first at `t = 0`).
///
/// Deterministic: the same recipe gives bit-identical values.
/// With several trajectories, they are integrated in parallel over the cores and stored back to
/// back (see [`Recipe::trajectories`]).
pub fn generate(recipe: &Recipe, progress: &dyn Progress) -> Result<Dataset> {
    recipe.validate()?;
    if recipe.trajectories > 1 {
        use rayon::prelude::*;
        let parts: Vec<Dataset> = (0..recipe.trajectories)
            .into_par_iter()
            .map(|k| {
                let one = Recipe {
                    seed: recipe.seed.wrapping_add(k as u64),
                    trajectories: 1,
                    ..recipe.clone()
                };
                generate(&one, &crate::progress::NoProgress)
            })
            .collect::<Result<_>>()?;
        progress.update(1.0);
        return Ok(Dataset {
            meta: DatasetMeta::new(recipe.clone()),
            names: parts[0].names.clone(),
            t: parts.iter().flat_map(|p| p.t.iter().copied()).collect(),
            values: parts.into_iter().flat_map(|p| p.values).collect(),
        });
    }
    let system = recipe.system.build(&recipe.params)?;
    let method = recipe.method();
    let record = (recipe.samples - 1) as f64 * recipe.dt;
    let share = recipe.transient / (recipe.transient + record).max(f64::MIN_POSITIVE);
    let y0 = perturbed_state(system.as_ref(), recipe.seed, recipe.perturbation);
    let warm = Scaled {
        inner: progress,
        offset: 0.0,
        scale: share,
    };
    let y = advance_by(method, system.as_ref(), &y0, 0.0, recipe.transient, &warm)?;
    let rec = Scaled {
        inner: progress,
        offset: share,
        scale: 1.0 - share,
    };
    let values = sample_by(
        method,
        system.as_ref(),
        &y,
        recipe.transient,
        recipe.dt,
        recipe.samples,
        &rec,
    )?;
    progress.update(1.0);
    Ok(Dataset {
        meta: DatasetMeta::new(recipe.clone()),
        names: system.var_names(),
        t: (0..recipe.samples).map(|i| i as f64 * recipe.dt).collect(),
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_fills_defaults_and_all_params() {
        let r = RecipeSpec::for_system(SystemName::Lorenz96TwoScale)
            .resolve()
            .unwrap();
        assert_eq!(r.samples, 10_000);
        assert_eq!(r.dt, 0.1);
        assert_eq!(r.transient, 10.0);
        assert_eq!(r.params.len(), 6);
        assert_eq!(r.params["F"], 20.0);
    }

    #[test]
    fn bad_fields_name_themselves() {
        type Edit = fn(&mut RecipeSpec);
        let cases: [(&str, Edit); 5] = [
            ("dt", |s| s.dt = Some(-0.1)),
            ("dt", |s| s.dt = Some(f64::NAN)),
            ("samples", |s| s.samples = Some(0)),
            ("rtol", |s| s.rtol = Some(0.0)),
            ("transient", |s| s.transient = Some(f64::INFINITY)),
        ];
        for (field, edit) in cases {
            let mut spec = RecipeSpec::for_system(SystemName::Thomas);
            edit(&mut spec);
            let err = spec.resolve().unwrap_err().to_string();
            assert!(err.starts_with(&format!("invalid {field}")), "{err}");
        }
    }

    #[test]
    fn toml_recipe_parses_integers_as_reals() {
        let spec: RecipeSpec =
            toml::from_str("system = \"lorenz96\"\nsamples = 5\n[params]\nN = 8\nF = 10\n")
                .unwrap();
        let r = spec.resolve().unwrap();
        assert_eq!(r.params["N"], 8.0);
        assert_eq!(r.params["F"], 10.0);
    }
}

//! Does a trained model reproduce the attractor? A long autonomous run of the model from several
//! starts, set beside a long trajectory of the true system, compared by what survives after a
//! forecast has failed: the largest Lyapunov exponent, the invariant density and the power
//! spectrum (the "climate" of Pathak et al. 2017, 2018), with a verdict per start: on the
//! attractor, collapsed, or diverged.
//!
//! - **Exponent**: two runs of the model from windows δ₀ apart, renormalised every τ steps
//!   (Benettin et al. 1980 in the model's delay coordinates): after τ steps the separation of the
//!   two latest rows (in σ units) is measured, its logarithmic growth summed, and the perturbed
//!   window reset to the reference window plus the difference of the two windows scaled back to
//!   δ₀. Both runs restart from their windows each segment, so a recurrent model's hidden state
//!   is rebuilt from the window (its warm-up), as in every forecast. The first tenth of the
//!   segments aligns the perturbation and is not counted.
//! - **Invariant density**: per variable, the Wasserstein-1 distance between the model's values
//!   and the true trajectory's (the area between their quantile functions), in units of the
//!   variable's training standard deviation σ; 0 for equal distributions, 1 between two equal
//!   distributions shifted one σ apart.
//! - **Spectrum**: per variable, Welch's periodogram (Hann window, half-overlapping segments of up
//!   to 256 steps, frequencies from 1/segment to the Nyquist frequency 1/(2Δt), the mean
//!   excluded); the distance is the mean absolute difference of log₁₀ power over frequencies and
//!   variables, in decades (0.3 ≈ a factor of 2 throughout).
//! - **Verdict**: *diverged* when a value is non-finite or more than `diverge_ranges` times the
//!   training range beyond the training minimum or maximum; *collapsed* when every variable's
//!   variance over the run's second half is below `collapse_fraction` of its training variance
//!   (a fixed point; a cycle is not caught); else *on the attractor*.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::systems::OdeSystem;
use crate::systems::integrate::{Tolerances, sample};

mod distances;

use distances::spectrum_distance;
pub use distances::{wasserstein1, welch};

/// Per variable, a spectrum: (frequency, log₁₀ power) pairs.
pub type Spectra = Vec<Vec<(f64, f64)>>;

/// A forecaster run on its own outputs, in physical units.
pub trait Autonomous {
    /// Rows each run reads (L).
    fn lookback(&self) -> usize;
    /// Values per row (D).
    fn vars(&self) -> usize;
    /// From `n` windows of `lookback` rows (`n × L × D` values, row-major), the next `steps` rows
    /// of each (`n × steps × D`), each row fed back as the run goes on.
    fn run(&self, windows: &[f64], n: usize, steps: usize) -> Result<Vec<f64>>;
}

impl<B: burn::prelude::Backend> Autonomous for crate::forecaster::Forecaster<B> {
    fn lookback(&self) -> usize {
        crate::forecaster::Forecaster::lookback(self)
    }

    fn vars(&self) -> usize {
        crate::forecaster::Forecaster::vars(self)
    }

    fn run(&self, windows: &[f64], n: usize, steps: usize) -> Result<Vec<f64>> {
        let (l, d) = (Autonomous::lookback(self), Autonomous::vars(self));
        let histories: Vec<Vec<Vec<f32>>> = (0..n)
            .map(|i| {
                windows[i * l * d..(i + 1) * l * d]
                    .chunks_exact(d)
                    .map(|r| r.iter().map(|v| *v as f32).collect())
                    .collect()
            })
            .collect();
        match self.rollout_batch(&histories, steps) {
            Ok(out) => Ok(out.into_iter().flatten().flatten().map(f64::from).collect()),
            // A window that left the finite numbers refuses the whole batch: run each alone, a
            // non-finite one going on as non-finite (the verdict says so), so one bad start does
            // not take the others with it.
            Err(crate::forecaster::ForecastError::NonFinite { .. }) if n > 1 => {
                let mut out = Vec::with_capacity(n * steps * d);
                for i in 0..n {
                    out.extend(self.run(&windows[i * l * d..(i + 1) * l * d], 1, steps)?);
                }
                Ok(out)
            }
            Err(crate::forecaster::ForecastError::NonFinite { .. }) => {
                Ok(vec![f64::NAN; n * steps * d])
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The true equations as a forecaster: each window's last row integrated Δt per step. Scored
/// against the system itself it passes every climate check, and its exponent is the system's.
pub struct SystemModel {
    system: Box<dyn OdeSystem>,
    dt: f64,
    tolerances: Tolerances,
    lookback: usize,
}

impl SystemModel {
    /// `system` sampled every `dt`, read through windows of `lookback` rows.
    pub fn new(
        system: Box<dyn OdeSystem>,
        dt: f64,
        tolerances: Tolerances,
        lookback: usize,
    ) -> Self {
        Self {
            system,
            dt,
            tolerances,
            lookback,
        }
    }
}

impl Autonomous for SystemModel {
    fn lookback(&self) -> usize {
        self.lookback
    }

    fn vars(&self) -> usize {
        self.system.dim()
    }

    fn run(&self, windows: &[f64], n: usize, steps: usize) -> Result<Vec<f64>> {
        let (l, d) = (self.lookback, self.system.dim());
        let mut out = Vec::with_capacity(n * steps * d);
        for i in 0..n {
            let last = &windows[(i * l + l - 1) * d..(i * l + l) * d];
            if last.iter().any(|v| !v.is_finite()) {
                out.extend(std::iter::repeat_n(f64::NAN, steps * d));
                continue;
            }
            let rows = match sample(
                self.system.as_ref(),
                last,
                0.0,
                self.dt,
                steps + 1,
                self.tolerances,
                &crate::progress::NoProgress,
            ) {
                Ok(rows) => rows,
                Err(Error::NonFinite { .. }) => vec![f64::NAN; (steps + 1) * d],
                Err(e) => return Err(e),
            };
            out.extend_from_slice(&rows[d..]);
        }
        Ok(out)
    }
}

/// How long to run and what to call collapsed or diverged.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClimateConfig {
    /// Steps of each autonomous run (and of the true trajectory).
    pub steps: usize,
    /// Renormalisation interval τ of the exponent, in steps.
    pub tau: usize,
    /// Separation δ₀ of the two runs, in σ units (of the latest row).
    pub delta: f64,
    /// Collapsed: every variable's variance below this fraction of its training variance.
    pub collapse_fraction: f64,
    /// Diverged: a value this many training ranges beyond the training minimum or maximum.
    pub diverge_ranges: f64,
    /// Sampling interval Δt, to turn steps into time.
    pub dt: f64,
}

impl ClimateConfig {
    /// For data sampled every `dt` with exponent `lambda` (if known): runs of `lyapunov_times`
    /// Lyapunov times (at least 1000 steps), τ of half a Lyapunov time (at least one step),
    /// δ₀ = 10⁻³ σ, collapsed below 1 % of the variance, diverged one range outside the data.
    pub fn new(dt: f64, lambda: Option<f64>, lyapunov_times: f64) -> Self {
        let per_lt = lambda.map(|l| 1.0 / (l * dt));
        Self {
            steps: per_lt.map_or(1000, |p| ((lyapunov_times * p).ceil() as usize).max(1000)),
            tau: per_lt.map_or(10, |p| ((0.5 * p).round() as usize).max(1)),
            delta: 1e-3,
            collapse_fraction: 0.01,
            diverge_ranges: 1.0,
            dt,
        }
    }

    fn validate(&self) -> Result<()> {
        crate::error::ensure_counts(&[("climate steps", self.steps), ("climate tau", self.tau)])?;
        if self.tau > self.steps {
            return Err(Error::config(
                "climate tau",
                format!(
                    "{} steps between renormalisations exceed the run of {} steps",
                    self.tau, self.steps
                ),
            ));
        }
        crate::error::ensure_positive("climate delta", self.delta)?;
        crate::error::ensure_positive("climate collapse fraction", self.collapse_fraction)?;
        crate::error::ensure_positive("climate diverge ranges", self.diverge_ranges)?;
        crate::error::ensure_positive("dt", self.dt)
    }
}

/// What a run did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Stayed in range with the spread of the data.
    OnAttractor,
    /// Every variable's spread fell below the stated fraction.
    Collapsed,
    /// Left the finite numbers or the data's range by the stated multiple.
    Diverged,
}

/// The climate of one start.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StartClimate {
    /// Index of the start within the windows given.
    pub start: usize,
    /// What the run did.
    pub verdict: Verdict,
    /// The model's largest Lyapunov exponent from this start (per time unit); `None` when a run
    /// diverged.
    pub lyapunov: Option<f64>,
    /// Wasserstein-1 distance to the truth per variable, in σ units; `None` when diverged.
    pub wasserstein: Option<Vec<f64>>,
    /// Mean absolute log₁₀ power difference to the truth, decades; `None` when diverged.
    pub spectrum_decades: Option<f64>,
}

/// The climate of a model over several starts, beside the truth.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Climate {
    /// The settings.
    pub config: ClimateConfig,
    /// The system's largest exponent (per time unit), where known.
    pub system_lyapunov: Option<f64>,
    /// Per start.
    pub starts: Vec<StartClimate>,
    /// Starts on the attractor, collapsed and diverged.
    pub on_attractor: usize,
    /// See [`Self::on_attractor`].
    pub collapsed: usize,
    /// See [`Self::on_attractor`].
    pub diverged: usize,
    /// Median over the starts that did not diverge: exponent, mean Wasserstein-1 over variables
    /// (σ units), spectrum distance (decades).
    pub lyapunov_median: Option<f64>,
    /// See [`Self::lyapunov_median`].
    pub wasserstein_median: Option<f64>,
    /// See [`Self::lyapunov_median`].
    pub spectrum_decades_median: Option<f64>,
    /// The floor of the two distances: a second true trajectory of the same length (when
    /// given) against the truth, mean Wasserstein-1 over variables (σ units) and spectrum
    /// distance (decades). A model cannot be told from the system below these.
    pub reference_wasserstein: Option<f64>,
    /// See [`Self::reference_wasserstein`].
    pub reference_spectrum_decades: Option<f64>,
    /// The first non-diverged start's run (`steps × D`), for plots.
    #[serde(skip)]
    pub example_run: Option<Vec<f64>>,
    /// Per variable, the truth's and the example run's spectra: (frequency, log₁₀ power).
    #[serde(skip)]
    pub example_spectra: Option<(Spectra, Spectra)>,
}

/// The training split's statistics the verdicts and distances are measured in.
#[derive(Clone, Debug, PartialEq)]
pub struct Scale {
    /// Per-variable standard deviation.
    pub std: Vec<f64>,
    /// Per-variable minimum.
    pub min: Vec<f64>,
    /// Per-variable maximum.
    pub max: Vec<f64>,
}

impl Scale {
    /// The statistics of `rows` (row-major, `vars` per row).
    pub fn of(rows: &[f64], vars: usize) -> Self {
        let n = (rows.len() / vars.max(1)).max(1) as f64;
        let mut mean = vec![0.0; vars];
        let mut min = vec![f64::INFINITY; vars];
        let mut max = vec![f64::NEG_INFINITY; vars];
        for row in rows.chunks_exact(vars) {
            for j in 0..vars {
                mean[j] += row[j] / n;
                min[j] = min[j].min(row[j]);
                max[j] = max[j].max(row[j]);
            }
        }
        let mut var = vec![0.0; vars];
        for row in rows.chunks_exact(vars) {
            for j in 0..vars {
                var[j] += (row[j] - mean[j]).powi(2) / n;
            }
        }
        Self {
            std: var.into_iter().map(f64::sqrt).collect(),
            min,
            max,
        }
    }
}

/// The climate of `model` from each of `windows` (`n × L × D`), against `truth` (a long true
/// trajectory, `rows × D`), in the units of `scale`; `system_lyapunov` is the system's exponent,
/// `reference` a second true trajectory that gives the distances' floor.
pub fn climate(
    model: &dyn Autonomous,
    windows: &[f64],
    truth: &[f64],
    reference: Option<&[f64]>,
    scale: &Scale,
    system_lyapunov: Option<f64>,
    cfg: &ClimateConfig,
) -> Result<Climate> {
    cfg.validate()?;
    let (l, d) = (model.lookback(), model.vars());
    let n = windows.len() / (l * d).max(1);
    if n == 0 || windows.len() != n * l * d {
        return Err(Error::ShapeMismatch {
            what: "climate start windows".into(),
            expected: format!("a positive multiple of {l} × {d} values"),
            got: windows.len().to_string(),
        });
    }
    if scale.std.len() != d || truth.len() < 2 * d || !truth.len().is_multiple_of(d) {
        return Err(Error::ShapeMismatch {
            what: "climate truth and scale".into(),
            expected: format!("{d} variables"),
            got: format!("{} statistics, {} values", scale.std.len(), truth.len()),
        });
    }
    if let Some(j) = scale.std.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(Error::config(
            "climate scale",
            format!(
                "variable {j} has standard deviation {} on the training split; the distances \
                 and the exponents are measured in its units, so it must be positive (drop a \
                 constant variable)",
                scale.std[j]
            ),
        ));
    }
    let runs = model.run(windows, n, cfg.steps)?;
    let exponents = exponents(model, windows, n, scale, cfg)?;
    let truth_spectra: Spectra = (0..d)
        .map(|j| welch(&column(truth, d, j), cfg.dt))
        .collect();
    let floor = reference.map(|r| {
        let w: f64 = (0..d)
            .map(|j| wasserstein1(&column(r, d, j), &column(truth, d, j)) / scale.std[j])
            .sum::<f64>()
            / d as f64;
        let spectra: Spectra = (0..d).map(|j| welch(&column(r, d, j), cfg.dt)).collect();
        (w, spectrum_distance(&spectra, &truth_spectra))
    });
    let mut starts = Vec::with_capacity(n);
    let mut example = None;
    for i in 0..n {
        let run = &runs[i * cfg.steps * d..(i + 1) * cfg.steps * d];
        let verdict = verdict(run, d, scale, cfg);
        if verdict == Verdict::Diverged {
            starts.push(StartClimate {
                start: i,
                verdict,
                lyapunov: None,
                wasserstein: None,
                spectrum_decades: None,
            });
            continue;
        }
        let wasserstein: Vec<f64> = (0..d)
            .map(|j| wasserstein1(&column(run, d, j), &column(truth, d, j)) / scale.std[j])
            .collect();
        let spectra: Spectra = (0..d).map(|j| welch(&column(run, d, j), cfg.dt)).collect();
        let spectrum = spectrum_distance(&spectra, &truth_spectra);
        if example.is_none() {
            example = Some((run.to_vec(), spectra));
        }
        starts.push(StartClimate {
            start: i,
            verdict,
            lyapunov: exponents[i].filter(|v| v.is_finite()),
            wasserstein: Some(wasserstein),
            spectrum_decades: Some(spectrum),
        });
    }
    let count = |v: Verdict| starts.iter().filter(|s| s.verdict == v).count();
    let med = |values: Vec<f64>| (!values.is_empty()).then(|| crate::metrics::median(&values));
    let (example_run, example_spectra) = match example {
        Some((run, spectra)) => (Some(run), Some((truth_spectra, spectra))),
        None => (None, None),
    };
    Ok(Climate {
        config: cfg.clone(),
        system_lyapunov,
        on_attractor: count(Verdict::OnAttractor),
        collapsed: count(Verdict::Collapsed),
        diverged: count(Verdict::Diverged),
        lyapunov_median: med(starts.iter().filter_map(|s| s.lyapunov).collect()),
        wasserstein_median: med(starts
            .iter()
            .filter_map(|s| s.wasserstein.as_ref())
            .map(|w| w.iter().sum::<f64>() / w.len() as f64)
            .collect()),
        spectrum_decades_median: med(starts.iter().filter_map(|s| s.spectrum_decades).collect()),
        reference_wasserstein: floor.map(|f| f.0),
        reference_spectrum_decades: floor.map(|f| f.1),
        starts,
        example_run,
        example_spectra,
    })
}

/// One `climate.csv` line per start.
pub fn climate_csv(c: &Climate, names: &[String]) -> String {
    let mut csv = String::from("start,verdict,lyapunov,spectrum_decades");
    for n in names {
        csv.push_str(&format!(",wasserstein_{n}"));
    }
    csv.push('\n');
    let cell = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for s in &c.starts {
        let verdict = match s.verdict {
            Verdict::OnAttractor => "on-attractor",
            Verdict::Collapsed => "collapsed",
            Verdict::Diverged => "diverged",
        };
        csv.push_str(&format!(
            "{},{verdict},{},{}",
            s.start,
            cell(s.lyapunov),
            cell(s.spectrum_decades)
        ));
        for j in 0..names.len() {
            csv.push_str(&format!(",{}", cell(s.wasserstein.as_ref().map(|w| w[j]))));
        }
        csv.push('\n');
    }
    csv
}

/// Column `j` of row-major `rows` of `d` values.
fn column(rows: &[f64], d: usize, j: usize) -> Vec<f64> {
    rows.iter().skip(j).step_by(d).copied().collect()
}

fn verdict(run: &[f64], d: usize, scale: &Scale, cfg: &ClimateConfig) -> Verdict {
    let out_of_range = run.chunks_exact(d).any(|row| {
        row.iter().enumerate().any(|(j, v)| {
            let margin = cfg.diverge_ranges * (scale.max[j] - scale.min[j]);
            !v.is_finite() || *v < scale.min[j] - margin || *v > scale.max[j] + margin
        })
    });
    if out_of_range {
        return Verdict::Diverged;
    }
    let rows = run.len() / d;
    let late = Scale::of(&run[(rows / 2) * d..], d);
    let collapsed = late
        .std
        .iter()
        .zip(&scale.std)
        .all(|(s, t)| s * s < cfg.collapse_fraction * t * t);
    if collapsed {
        Verdict::Collapsed
    } else {
        Verdict::OnAttractor
    }
}

/// The exponent from each start (see the module's documentation): all starts' reference and
/// perturbed runs in one batch per segment.
fn exponents(
    model: &dyn Autonomous,
    windows: &[f64],
    n: usize,
    scale: &Scale,
    cfg: &ClimateConfig,
) -> Result<Vec<Option<f64>>> {
    let (l, d, tau) = (model.lookback(), model.vars(), cfg.tau);
    let segments = cfg.steps / tau;
    let skip = segments / 10;
    // A fixed pseudo-random direction over the whole window (golden-ratio sequence), scaled
    // so that its latest row is δ₀ long in σ units.
    let direction: Vec<f64> = (0..l * d)
        .map(|k| ((k as f64 * 0.618_033_988_749_895).fract() - 0.5) * scale.std[k % d])
        .collect();
    let latest = |w: &[f64]| -> f64 {
        w[(l - 1) * d..l * d]
            .iter()
            .zip(&scale.std)
            .map(|(v, s)| (v / s).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    let first = cfg.delta / latest(&direction);
    let mut batch = Vec::with_capacity(2 * n * l * d);
    for i in 0..n {
        let w = &windows[i * l * d..(i + 1) * l * d];
        batch.extend_from_slice(w);
        batch.extend(w.iter().zip(&direction).map(|(v, e)| v + first * e));
    }
    let mut sums = vec![0.0f64; n];
    let mut alive = vec![true; n];
    for k in 0..segments {
        let out = model.run(&batch, 2 * n, tau)?;
        let mut next = Vec::with_capacity(batch.len());
        for (j, window) in batch.chunks_exact(l * d).enumerate() {
            // The window slides on by τ rows: its last L − τ rows, then the run's τ.
            let run = &out[j * tau * d..(j + 1) * tau * d];
            let kept = l.saturating_sub(tau);
            next.extend_from_slice(&window[(l - kept) * d..]);
            next.extend_from_slice(&run[(tau - (l - kept)) * d..]);
        }
        for i in 0..n {
            let (r, p) = (2 * i * l * d, (2 * i + 1) * l * d);
            let diff: Vec<f64> = (0..l * d).map(|k| next[p + k] - next[r + k]).collect();
            let grown = latest(&diff);
            if !grown.is_finite() || !alive[i] {
                alive[i] = false;
                continue;
            }
            if k >= skip {
                // A separation that shrank to rounding gives −∞; clamp it at the smallest
                // positive number so a collapsed model reads as strongly negative, not NaN.
                sums[i] += (grown.max(f64::MIN_POSITIVE) / cfg.delta).ln();
            }
            let factor = if grown > 0.0 { cfg.delta / grown } else { 1.0 };
            for k in 0..l * d {
                next[p + k] = next[r + k] + diff[k] * factor;
            }
        }
        batch = next;
    }
    let time = ((segments - skip) * tau) as f64 * cfg.dt;
    Ok((0..n)
        .map(|i| (alive[i] && segments > skip).then(|| sums[i] / time))
        .collect())
}

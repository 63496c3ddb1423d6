//! Scoring a trained run ([`evaluate_run`]): direct forecasts over every test window against the
//! persistence floor, a closed-loop rollout, and on request the model's climate and an ensemble's
//! calibration, written to the run folder as `report.json` and `nrmse_steps.csv`. What
//! `chaoscast eval`, `compare` and `demo` report.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::module::Module;
use serde::Serialize;

use super::windows::{forecast, rollout};
use crate::climate::{Climate, ClimateConfig, Scale, climate, climate_csv};
use crate::data::batch::{ScaledWindows, training_rows};
use crate::data::window::{Split, SplitFractions, WindowSpec, split_rows, split_windows};
use crate::data::{Dataset, generate, read_dataset};
use crate::error::{Error, Result};
use crate::forecaster::Forecaster;
use crate::metrics::{ForecastReport, VPT_THRESHOLD, evaluate, persistence};
use crate::progress::NoProgress;
use crate::run::{RunConfig, load_model, write_atomic};

/// What [`evaluate_run`] scores beyond the direct forecasts and the persistence floor.
#[derive(Clone, Debug, Default)]
pub struct EvalOptions {
    /// Another dataset file with the same variables (default: the run's training data).
    pub data: Option<PathBuf>,
    /// Steps of closed-loop rollout to score (0: none; default 4·H, shortened to what the test
    /// split holds).
    pub rollout: Option<usize>,
    /// Judge the model's climate.
    pub climate: Option<ClimateOptions>,
    /// Score an ensemble from perturbed histories.
    pub ensemble: Option<EnsembleOptions>,
}

/// The climate runs of [`EvalOptions::climate`].
#[derive(Clone, Debug, Default)]
pub struct ClimateOptions {
    /// Steps of each run (default 100 Lyapunov times, at least 1000).
    pub steps: Option<usize>,
    /// Test-split starts (default 5).
    pub starts: Option<usize>,
}

/// The ensemble of [`EvalOptions::ensemble`].
#[derive(Clone, Debug)]
pub struct EnsembleOptions {
    /// Members (member 0 unperturbed).
    pub members: usize,
    /// Gaussian noise added to every history value, in training standard deviations.
    pub perturb: f64,
}

/// How an ensemble forecast scores.
#[derive(Clone, Debug, Serialize)]
pub struct EnsembleReport {
    /// Members, member 0 unperturbed.
    pub members: usize,
    /// The perturbation, in training standard deviations.
    pub perturb: f64,
    /// Test windows scored.
    pub windows: usize,
    /// The ensemble mean's median NRMSE.
    pub nrmse_median: f64,
    /// The ensemble mean's mean NRMSE.
    pub nrmse_mean: f64,
    /// The ensemble mean's median VPT (steps).
    pub vpt_median_steps: f64,
    /// Mean spread over mean error of the ensemble mean (both RMS over variables in σ units,
    /// averaged over windows and steps): 1 for a calibrated ensemble, below 1 overconfident.
    pub spread_error_ratio: f64,
    /// Pearson correlation over windows of the window's mean spread and mean error: positive
    /// when the spread tells which forecasts to trust.
    pub spread_error_correlation: f64,
}

/// What [`evaluate_run`] found, as written to the run's `report.json`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The model family.
    pub model: &'static str,
    /// Trainable parameters.
    pub parameters: usize,
    /// The dataset the test windows came from.
    pub data: PathBuf,
    /// Steps of one forecast (H).
    pub horizon: usize,
    /// Rows the model reads (L).
    pub lookback: usize,
    /// The variables, in row order.
    pub variables: Vec<String>,
    /// Median NRMSE of the direct forecasts over the test windows.
    pub nrmse_median: f64,
    /// Mean NRMSE of the direct forecasts.
    pub nrmse_mean: f64,
    /// Median valid prediction time, in steps.
    pub vpt_median_steps: f64,
    /// Median valid prediction time in Lyapunov times, where the dataset knows its exponent.
    pub vpt_median_lyapunov: Option<f64>,
    /// The direct forecasts' full report (per step, per variable).
    pub model_report: ForecastReport,
    /// The persistence forecast (the last value repeated) on the same windows: the floor.
    pub persistence: ForecastReport,
    /// Steps of the closed-loop rollout scored (0: none).
    pub rollout_steps: usize,
    /// The rollout's report, when one was scored.
    pub rollout: Option<ForecastReport>,
    /// The model's climate, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub climate: Option<Climate>,
    /// The ensemble's scores, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<EnsembleReport>,
}

impl Report {
    /// The persistence forecast's median NRMSE on the same windows.
    pub fn persistence_nrmse(&self) -> f64 {
        self.persistence.nrmse_median
    }
}

/// Scores the run in folder `run` on its dataset's test windows (every window, whatever stride
/// training used): direct forecasts, the persistence floor, a closed-loop rollout, and what
/// `options` add (climate, ensemble). Writes `report.json` and `nrmse_steps.csv` into the run
/// folder (and `climate.csv` with the climate), and with the `plots` feature `nrmse.png`,
/// `loss.png`, `forecast_1..3.png` (and `climate_*.png`). `log` receives a line before each
/// long step (the climate's integrations); the library never prints. On the CPU.
pub fn evaluate_run(run: &Path, options: &EvalOptions, log: &dyn Fn(&str)) -> Result<Report> {
    let cfg = RunConfig::load(run)?;
    let path = options.data.clone().unwrap_or(cfg.data_path.clone());
    let data = read_dataset(&path)?
        .select(&cfg.names)
        .map_err(|e| Error::storage(&path, format!("does not fit this run ({e})")))?;
    let device = Default::default();
    let model = load_model::<Flex>(&cfg, run, &device)?;
    // Every test window counts, whatever stride training used.
    let spec = WindowSpec {
        stride: 1,
        ..cfg.train.windows()
    };
    let segments = data.segments();
    let split = cfg.train.split;
    let sets = split_windows(&segments, spec, split, SplitFractions::default())?;
    let norm = &cfg.normalizer;
    let scaled = ScaledWindows::new(&data, norm, spec);
    let mut preds = forecast(&model, &scaled, &sets.test, 256, &device)?;
    norm.denormalize(&mut preds);
    let truths = truth_blocks(&data, &sets.test, spec.lookback, spec.horizon);
    let dt_lambda = data.meta.dt_lambda();
    let report = evaluate(
        &preds,
        &truths,
        spec.horizon,
        &norm.std,
        VPT_THRESHOLD,
        dt_lambda,
    )?;
    let floor = persistence(
        &data.values,
        &sets.test,
        spec,
        &norm.std,
        VPT_THRESHOLD,
        dt_lambda,
    )?;
    // The default rollout (4·H) shrinks to what the test split holds; an explicit one must fit.
    let [_, _, test_rows] = split_rows(&segments, split, SplitFractions::default())?;
    let longest = test_rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let room = longest.saturating_sub(spec.lookback);
    let rollout_steps = options.rollout.unwrap_or((4 * spec.horizon).min(room));
    let rollout = if rollout_steps > spec.horizon {
        let long = WindowSpec {
            horizon: rollout_steps,
            ..spec
        };
        let starts = split_windows(&segments, long, split, SplitFractions::default())
            .map_err(|e| {
                Error::config(
                    "rollout",
                    format!(
                        "the test split is too short for a rollout of {rollout_steps} steps ({e})"
                    ),
                )
            })?
            .test;
        let mut rolled = rollout(&model, &scaled, &starts, rollout_steps, 256, &device)?;
        norm.denormalize(&mut rolled);
        let truths = truth_blocks(&data, &starts, spec.lookback, rollout_steps);
        Some(evaluate(
            &rolled,
            &truths,
            rollout_steps,
            &norm.std,
            VPT_THRESHOLD,
            dt_lambda,
        )?)
    } else {
        None
    };
    let out = Report {
        model: cfg.train.model.name(),
        parameters: model.num_params(),
        data: path.clone(),
        horizon: spec.horizon,
        lookback: spec.lookback,
        variables: data.names.clone(),
        nrmse_median: report.nrmse_median,
        nrmse_mean: report.nrmse_mean,
        vpt_median_steps: report.vpt_median_steps,
        vpt_median_lyapunov: report.vpt_median_lyapunov,
        model_report: report.clone(),
        persistence: floor.clone(),
        rollout_steps: rollout.as_ref().map_or(0, |_| rollout_steps),
        rollout: rollout.clone(),
        climate: match &options.climate {
            Some(c) => Some(judge_climate(run, c, &data, split, &sets.test, log)?),
            None => None,
        },
        ensemble: match &options.ensemble {
            Some(e) => Some(score_ensemble(
                run, e, &data, &sets.test, &truths, dt_lambda,
            )?),
            None => None,
        },
    };
    let report_path = run.join("report.json");
    let json = serde_json::to_string_pretty(&out).map_err(|e| Error::storage(&report_path, e))?;
    write_atomic(&report_path, json.as_bytes())?;
    write_atomic(
        &run.join("nrmse_steps.csv"),
        steps_csv(&report, &floor, rollout.as_ref(), dt_lambda).as_bytes(),
    )?;

    #[cfg(feature = "plots")]
    super::plots::run_plots(run, &data, &report, &sets.test, &truths, &preds, spec)?;
    Ok(out)
}

/// The ensemble of `k` perturbed members on every test window, against `truths` (H rows per
/// window, back to back).
fn score_ensemble(
    run: &Path,
    options: &EnsembleOptions,
    data: &Dataset,
    test: &[usize],
    truths: &[f64],
    dt_lambda: Option<f64>,
) -> Result<EnsembleReport> {
    let (k, perturb) = (options.members, options.perturb);
    if k == 0 {
        return Err(Error::config("ensemble members", "must be at least 1"));
    }
    if !(perturb.is_finite() && perturb >= 0.0) {
        return Err(Error::config(
            "ensemble perturbation",
            format!("must be zero or positive, got {perturb}"),
        ));
    }
    let forecaster = Forecaster::load(run)?;
    let (l, h, d) = (forecaster.lookback(), forecaster.horizon(), data.vars());
    let std = &forecaster.config().normalizer.std;
    let mut means = Vec::with_capacity(test.len() * h * d);
    let (mut spreads, mut errors) = (Vec::new(), Vec::new());
    for (w, &s) in test.iter().enumerate() {
        let history: Vec<Vec<f32>> = (s..s + l)
            .map(|i| data.row(i).iter().map(|v| *v as f32).collect())
            .collect();
        let e = forecaster.ensemble(&history, k, perturb, h, w as u64)?;
        let truth = &truths[w * h * d..(w + 1) * h * d];
        let (mut spread, mut error) = (0.0, 0.0);
        for t in 0..h {
            let rms = |f: &dyn Fn(usize) -> f64| {
                ((0..d).map(|j| (f(j) / std[j]).powi(2)).sum::<f64>() / d as f64).sqrt()
            };
            spread += rms(&|j| f64::from(e.spread[t][j]));
            error += rms(&|j| f64::from(e.mean[t][j]) - truth[t * d + j]);
        }
        spreads.push(spread / h as f64);
        errors.push(error / h as f64);
        means.extend(e.mean.iter().flatten().map(|v| f64::from(*v)));
    }
    let report = evaluate(&means, truths, h, std, VPT_THRESHOLD, dt_lambda)?;
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (ms, me) = (mean(&spreads), mean(&errors));
    let cov: f64 = spreads
        .iter()
        .zip(&errors)
        .map(|(s, e)| (s - ms) * (e - me))
        .sum();
    let var = |v: &[f64], m: f64| v.iter().map(|x| (x - m).powi(2)).sum::<f64>();
    let correlation = cov / (var(&spreads, ms) * var(&errors, me)).sqrt();
    Ok(EnsembleReport {
        members: k,
        perturb,
        windows: test.len(),
        nrmse_median: report.nrmse_median,
        nrmse_mean: report.nrmse_mean,
        vpt_median_steps: report.vpt_median_steps,
        spread_error_ratio: ms / me,
        spread_error_correlation: correlation,
    })
}

/// The run's climate (see [`crate::climate`]) from `options.starts` test windows, written to
/// climate.csv (and three plots).
fn judge_climate(
    run: &Path,
    options: &ClimateOptions,
    data: &Dataset,
    split: Split,
    test: &[usize],
    log: &dyn Fn(&str),
) -> Result<Climate> {
    let forecaster = Forecaster::load(run)?;
    let (l, vars) = (forecaster.lookback(), data.vars());
    let lambda = data.meta.exponent();
    let mut cfg = ClimateConfig::new(data.meta.recipe.dt, lambda, 100.0);
    if let Some(steps) = options.steps {
        if steps == 0 {
            return Err(Error::config("climate steps", "must be at least 1"));
        }
        cfg.steps = steps;
        cfg.tau = cfg.tau.min(steps);
    }
    let k = options.starts.unwrap_or(5);
    if k == 0 || k > test.len() {
        return Err(Error::config(
            "climate starts",
            format!(
                "must be between 1 and the {} test windows, got {k}",
                test.len()
            ),
        ));
    }
    let starts: Vec<usize> = (0..k)
        .map(|i| test[i * (test.len() - 1) / (k - 1).max(1)])
        .collect();
    let windows: Vec<f64> = starts
        .iter()
        .flat_map(|&s| data.values[s * vars..(s + l) * vars].iter().copied())
        .collect();
    let mut recipe = data.meta.recipe.clone();
    // One trajectory, from a seed none of the dataset's trajectories used.
    recipe.seed = recipe.seed.wrapping_add(recipe.trajectories.max(1) as u64);
    recipe.trajectories = 1;
    recipe.samples = cfg.steps;
    log(&format!(
        "climate: integrating a true trajectory of {} steps (the recipe, seed {})",
        cfg.steps, recipe.seed
    ));
    let truth = generate(&recipe, &NoProgress)?.select(&data.names)?;
    // A second true trajectory (seed + 2) against the first: the distances' floor.
    recipe.seed = recipe.seed.wrapping_add(1);
    let reference = generate(&recipe, &NoProgress)?.select(&data.names)?;
    let scale = Scale::of(&training_rows(data, split)?, vars);
    log(&format!(
        "climate: {k} runs of {} steps, exponent renormalised every {} steps",
        cfg.steps, cfg.tau
    ));
    let c = climate(
        &forecaster,
        &windows,
        &truth.values,
        Some(&reference.values),
        &scale,
        lambda,
        &cfg,
    )?;
    write_atomic(
        &run.join("climate.csv"),
        climate_csv(&c, &data.names).as_bytes(),
    )?;
    #[cfg(feature = "plots")]
    super::plots::climate_plots(run, &c, &truth.values, &data.names, &scale)?;
    Ok(c)
}

/// The true rows after each window's lookback, `steps` of them, back to back.
pub(super) fn truth_blocks(
    data: &Dataset,
    starts: &[usize],
    lookback: usize,
    steps: usize,
) -> Vec<f64> {
    let vars = data.vars();
    starts
        .iter()
        .flat_map(|&s| {
            let first = s + lookback;
            &data.values[first * vars..(first + steps) * vars]
        })
        .copied()
        .collect()
}

/// One line per step: the direct forecast's, the persistence forecast's and the rollout's mean
/// NRMSE over test windows (empty where a forecast does not reach).
fn steps_csv(
    direct: &ForecastReport,
    floor: &ForecastReport,
    rollout: Option<&ForecastReport>,
    dt_lambda: Option<f64>,
) -> String {
    let rows = rollout.map_or(direct.nrmse_per_step.len(), |r| r.nrmse_per_step.len());
    let cell = |v: Option<&f64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut csv = String::from("step,lyapunov_times,model,persistence,rollout\n");
    for k in 0..rows {
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            k + 1,
            cell(dt_lambda.map(|dl| (k + 1) as f64 * dl).as_ref()),
            cell(direct.nrmse_per_step.get(k)),
            cell(floor.nrmse_per_step.get(k)),
            cell(rollout.and_then(|r| r.nrmse_per_step.get(k)))
        ));
    }
    csv
}

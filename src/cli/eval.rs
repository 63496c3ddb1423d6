//! `chaoscast eval`: score a run's best model on the test split, with plots.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::backend::Flex;
use burn::module::Module;
use chaoscast::climate::{Climate, ClimateConfig, Scale, climate, climate_csv};
use chaoscast::data::window::{Split, SplitFractions, WindowSpec, split_rows, split_windows};
use chaoscast::data::{Dataset, read_dataset};
use chaoscast::forecaster::Forecaster;
use chaoscast::metrics::{ForecastReport, VPT_THRESHOLD, evaluate, persistence};
use chaoscast::plots;
use chaoscast::run::{RunConfig, load_metrics, load_model, write_atomic};
use chaoscast::train::trainer::{ScaledWindows, training_rows};
use serde::Serialize;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Writes into the run folder: report.json (median and mean NRMSE, VPT, per-variable NRMSE,\n\
    the persistence floor, the rollout), nrmse_steps.csv (NRMSE per step: direct forecast, rollout,\n\
    persistence), nrmse.png, loss.png and forecast_1..3.png."
)]
pub(crate) struct Args {
    /// A run folder written by `chaoscast train`.
    pub(crate) run: PathBuf,
    /// Evaluate on another dataset file with the same variables [default: the training data].
    #[arg(long)]
    pub(crate) data: Option<PathBuf>,
    /// Steps of autoregressive rollout to score beyond one forecast (0: none) [default: 4·H].
    #[arg(long)]
    pub(crate) rollout: Option<usize>,
    /// Also judge the model's climate: long autonomous runs from test-split starts beside a
    /// regenerated true trajectory (the dataset's recipe, seed + 1): the largest Lyapunov
    /// exponent, invariant densities, power spectra and a verdict per start; writes
    /// climate.csv, climate_attractor.png, climate_spectra.png, climate_density.png and a
    /// "climate" entry in report.json.
    #[arg(long)]
    pub(crate) climate: bool,
    /// Steps of each climate run [default: 100 Lyapunov times, at least 1000].
    #[arg(long, requires = "climate")]
    pub(crate) steps: Option<usize>,
    /// Test-split starts of the climate runs [default: 5].
    #[arg(long, requires = "climate")]
    pub(crate) starts: Option<usize>,
    /// Also score an ensemble of K members from perturbed histories on every test window: the
    /// ensemble mean's NRMSE and how its spread tracks its error ("ensemble" in report.json).
    #[arg(long, value_name = "K")]
    pub(crate) ensemble: Option<usize>,
    /// The ensemble's perturbation in training standard deviations [default: 0.01].
    #[arg(long, value_name = "SIGMA", requires = "ensemble")]
    pub(crate) perturb: Option<f64>,
}

/// How an ensemble forecast scores.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct EnsembleReport {
    members: usize,
    perturb: f64,
    windows: usize,
    /// The ensemble mean's median and mean NRMSE and median VPT (steps).
    nrmse_median: f64,
    nrmse_mean: f64,
    vpt_median_steps: f64,
    /// Mean spread over mean error of the ensemble mean (both RMS over variables in σ units,
    /// averaged over windows and steps): 1 for a calibrated ensemble, below 1 overconfident.
    spread_error_ratio: f64,
    /// Pearson correlation over windows of the window's mean spread and mean error: positive
    /// when the spread tells which forecasts to trust.
    spread_error_correlation: f64,
}

#[derive(Serialize)]
pub(crate) struct Report {
    model: &'static str,
    parameters: usize,
    data: PathBuf,
    horizon: usize,
    lookback: usize,
    variables: Vec<String>,
    pub(crate) nrmse_median: f64,
    pub(crate) nrmse_mean: f64,
    pub(crate) vpt_median_steps: f64,
    pub(crate) vpt_median_lyapunov: Option<f64>,
    model_report: ForecastReport,
    persistence: ForecastReport,
    rollout_steps: usize,
    rollout: Option<ForecastReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) climate: Option<Climate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ensemble: Option<EnsembleReport>,
}

pub(crate) fn run(args: Args) -> Result<()> {
    evaluate_run(&args, false).map(|_| ())
}

impl Report {
    /// The persistence forecast's median NRMSE on the same windows.
    pub(crate) fn persistence_nrmse(&self) -> f64 {
        self.persistence.nrmse_median
    }
}

/// Evaluates a run, writes its report and plots, and prints a summary unless `quiet`.
pub(crate) fn evaluate_run(args: &Args, quiet: bool) -> Result<Report> {
    let cfg = RunConfig::load(&args.run)?;
    let path = args.data.clone().unwrap_or(cfg.data_path.clone());
    let data = read_dataset(&path)?
        .select(&cfg.names)
        .with_context(|| format!("{} does not fit this run", path.display()))?;
    let device = Default::default();
    let model = load_model::<Flex>(&cfg, &args.run, &device)?;
    // Every test window counts, whatever stride training used.
    let spec = WindowSpec {
        stride: 1,
        ..cfg.train.windows()
    };
    let segments = data.segments();
    let split = cfg.train.split;
    let sets = split_windows(&segments, spec, split, SplitFractions::default())?;
    let vars = data.vars();
    let norm = &cfg.normalizer;
    let scaled = ScaledWindows::new(&data, norm, spec);
    let mut preds = scaled.forecast(&model, &sets.test, 256, &device)?;
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
    let rollout_steps = args.rollout.unwrap_or((4 * spec.horizon).min(room));
    let rollout = if rollout_steps > spec.horizon {
        let long = WindowSpec {
            horizon: rollout_steps,
            ..spec
        };
        let starts = split_windows(&segments, long, split, SplitFractions::default())
            .with_context(|| format!("the test split is too short for --rollout {rollout_steps}"))?
            .test;
        let mut rolled = scaled.rollout(&model, &starts, rollout_steps, 256, &device)?;
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
        climate: if args.climate {
            Some(judge_climate(args, &data, split, &sets.test, quiet)?)
        } else {
            None
        },
        ensemble: match args.ensemble {
            Some(k) => Some(score_ensemble(
                args, &data, &sets.test, &truths, k, dt_lambda,
            )?),
            None => None,
        },
    };
    write_atomic(
        &args.run.join("report.json"),
        serde_json::to_string_pretty(&out)?.as_bytes(),
    )?;
    write_atomic(
        &args.run.join("nrmse_steps.csv"),
        steps_csv(&report, &floor, rollout.as_ref(), dt_lambda).as_bytes(),
    )?;

    plots::nrmse_over_horizon(
        &args.run.join("nrmse.png"),
        &report.nrmse_per_step,
        VPT_THRESHOLD,
    )?;
    let history = load_metrics(&args.run)?;
    let train: Vec<f64> = history.iter().map(|m| m.train_loss).collect();
    let val: Vec<f64> = history.iter().map(|m| m.val_loss).collect();
    plots::loss_curves(&args.run.join("loss.png"), &train, &val)?;
    let block = spec.horizon * vars;
    let count = sets.test.len();
    for (k, i) in [0, count / 2, count - 1].into_iter().enumerate() {
        let s = sets.test[i];
        let history = &data.values[s * vars..(s + spec.lookback) * vars];
        plots::forecast_vs_truth(
            &args.run.join(format!("forecast_{}.png", k + 1)),
            &data.names,
            data.meta.recipe.dt,
            history,
            &truths[i * block..(i + 1) * block],
            &preds[i * block..(i + 1) * block],
            3,
        )?;
    }
    if quiet {
        return Ok(out);
    }
    let lyap = |l: Option<f64>| {
        l.map(|l| format!(" = {l:.2} Lyapunov times"))
            .unwrap_or_default()
    };
    println!(
        "{} ({} parameters) on {} test windows (H = {}): median NRMSE {:.4} (mean {:.4}), median VPT {} steps{}; persistence {:.4}",
        out.model,
        out.parameters,
        report.windows,
        spec.horizon,
        report.nrmse_median,
        report.nrmse_mean,
        report.vpt_median_steps,
        lyap(report.vpt_median_lyapunov),
        floor.nrmse_median
    );
    if let Some(r) = &rollout {
        println!(
            "rollout of {rollout_steps} steps on {} windows: median NRMSE {:.4}, median VPT {} steps{}",
            r.windows,
            r.nrmse_median,
            r.vpt_median_steps,
            lyap(r.vpt_median_lyapunov)
        );
    }
    if let Some(e) = &out.ensemble {
        println!(
            "ensemble of {} members (perturbation {} σ) on {} windows: mean's median NRMSE {:.4}, median VPT {} steps; spread / error {:.3}, correlation {:.3}",
            e.members,
            e.perturb,
            e.windows,
            e.nrmse_median,
            e.vpt_median_steps,
            e.spread_error_ratio,
            e.spread_error_correlation
        );
    }
    if let Some(c) = &out.climate {
        let value = |v: Option<f64>, digits: usize| {
            v.map_or("—".to_string(), |v| format!("{v:.digits$}"))
        };
        println!(
            "climate over {} starts of {} steps: {} on the attractor, {} collapsed, {} diverged; exponent {} (system {}), Wasserstein-1 {} σ (true against true {}), spectrum {} decades (true against true {}) (medians)",
            c.starts.len(),
            c.config.steps,
            c.on_attractor,
            c.collapsed,
            c.diverged,
            value(c.lyapunov_median, 3),
            value(c.system_lyapunov, 3),
            value(c.wasserstein_median, 3),
            value(c.reference_wasserstein, 3),
            value(c.spectrum_decades_median, 3),
            value(c.reference_spectrum_decades, 3)
        );
    }
    println!(
        "wrote {}/report.json, nrmse_steps.csv, nrmse.png, loss.png, forecast_1..3.png{}",
        args.run.display(),
        if out.climate.is_some() {
            ", climate.csv, climate_*.png"
        } else {
            ""
        }
    );
    Ok(out)
}

/// The ensemble of `k` perturbed members on every test window, against `truths` (H rows per
/// window, back to back).
fn score_ensemble(
    args: &Args,
    data: &Dataset,
    test: &[usize],
    truths: &[f64],
    k: usize,
    dt_lambda: Option<f64>,
) -> Result<EnsembleReport> {
    if k == 0 {
        anyhow::bail!("--ensemble must be at least 1 member");
    }
    let perturb = args.perturb.unwrap_or(0.01);
    if !(perturb.is_finite() && perturb >= 0.0) {
        anyhow::bail!("--perturb must be zero or positive, got {perturb}");
    }
    let forecaster = Forecaster::load(&args.run)?;
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

/// The run's climate (see [`chaoscast::climate`]) from `--starts` test windows, written to
/// climate.csv and three plots.
fn judge_climate(
    args: &Args,
    data: &Dataset,
    split: Split,
    test: &[usize],
    quiet: bool,
) -> Result<Climate> {
    let forecaster = Forecaster::load(&args.run)?;
    let (l, vars) = (forecaster.lookback(), data.vars());
    let lambda = data.meta.exponent();
    let mut cfg = ClimateConfig::new(data.meta.recipe.dt, lambda, 100.0);
    if let Some(steps) = args.steps {
        if steps == 0 {
            anyhow::bail!("--steps must be at least 1");
        }
        cfg.steps = steps;
        cfg.tau = cfg.tau.min(steps);
    }
    let k = args.starts.unwrap_or(5);
    if k == 0 || k > test.len() {
        anyhow::bail!(
            "--starts must be between 1 and the {} test windows",
            test.len()
        );
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
    if !quiet {
        eprintln!(
            "climate: integrating a true trajectory of {} steps (the recipe, seed {})",
            cfg.steps, recipe.seed
        );
    }
    let truth = chaoscast::data::generate(&recipe, &chaoscast::progress::NoProgress)?
        .select(&data.names)?;
    // A second true trajectory (seed + 2) against the first: the distances' floor.
    recipe.seed = recipe.seed.wrapping_add(1);
    let reference = chaoscast::data::generate(&recipe, &chaoscast::progress::NoProgress)?
        .select(&data.names)?;
    let scale = Scale::of(&training_rows(data, split)?, vars);
    if !quiet {
        eprintln!(
            "climate: {k} runs of {} steps, exponent renormalised every {} steps",
            cfg.steps, cfg.tau
        );
    }
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
        &args.run.join("climate.csv"),
        climate_csv(&c, &data.names).as_bytes(),
    )?;
    climate_plots(&args.run, &c, &truth.values, &data.names, &scale)?;
    Ok(c)
}

/// The attractor's projection on the first two variables, the spectra and the densities of up to
/// three variables: the truth in grey, the first run that did not diverge in red.
fn climate_plots(
    run: &std::path::Path,
    c: &Climate,
    truth: &[f64],
    names: &[String],
    scale: &Scale,
) -> Result<()> {
    const GREY: (u8, u8, u8) = (150, 150, 150);
    const RED: (u8, u8, u8) = (214, 39, 40);
    let d = names.len();
    let shown = d.min(3);
    let Some(model) = &c.example_run else {
        return Ok(());
    };
    let line = |label: &str, points: Vec<(f64, f64)>, color| plots::Line {
        label: label.into(),
        points,
        color,
    };
    let pairs = |rows: &[f64]| -> Vec<(f64, f64)> {
        rows.chunks_exact(d)
            .take(4000)
            .map(|r| (r[0], r[d.min(2) - 1]))
            .collect()
    };
    if d >= 2 {
        plots::render(
            &run.join("climate_attractor.png"),
            &[plots::Panel {
                title: format!("attractor, {} against {}", names[1], names[0]),
                x_label: names[0].clone(),
                y_label: names[1].clone(),
                lines: vec![
                    line("truth", pairs(truth), GREY),
                    line("model", pairs(model), RED),
                ],
            }],
            700,
            600,
        )?;
    }
    if let Some((t, m)) = &c.example_spectra {
        let panels: Vec<plots::Panel> = (0..shown)
            .map(|j| plots::Panel {
                title: format!("power spectrum of {}", names[j]),
                x_label: "frequency (1 / time unit)".into(),
                y_label: "log10 power".into(),
                lines: vec![
                    line("truth", t[j].clone(), GREY),
                    line("model", m[j].clone(), RED),
                ],
            })
            .collect();
        plots::render(&run.join("climate_spectra.png"), &panels, 800, 260)?;
    }
    let density = |rows: &[f64], j: usize| -> Vec<(f64, f64)> {
        let (lo, hi) = (scale.min[j], scale.max[j]);
        let margin = 0.1 * (hi - lo);
        let (lo, hi) = (lo - margin, hi + margin);
        const BINS: usize = 60;
        let width = (hi - lo) / BINS as f64;
        let mut counts = [0.0; BINS];
        let values: Vec<f64> = rows.iter().skip(j).step_by(d).copied().collect();
        for v in &values {
            let b = ((v - lo) / width).floor();
            if b >= 0.0 && (b as usize) < BINS {
                counts[b as usize] += 1.0;
            }
        }
        counts
            .iter()
            .enumerate()
            .map(|(b, n)| {
                (
                    lo + (b as f64 + 0.5) * width,
                    n / (values.len() as f64 * width),
                )
            })
            .collect()
    };
    let panels: Vec<plots::Panel> = (0..shown)
        .map(|j| plots::Panel {
            title: format!("density of {}", names[j]),
            x_label: names[j].clone(),
            y_label: "density".into(),
            lines: vec![
                line("truth", density(truth, j), GREY),
                line("model", density(model, j), RED),
            ],
        })
        .collect();
    plots::render(&run.join("climate_density.png"), &panels, 800, 260)?;
    Ok(())
}

/// The true rows after each window's lookback, `steps` of them, back to back.
fn truth_blocks(data: &Dataset, starts: &[usize], lookback: usize, steps: usize) -> Vec<f64> {
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

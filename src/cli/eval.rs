//! `chaoscast eval`: score a run's best model on the test split, with plots.

use std::path::PathBuf;

use anyhow::{Context, Result};
use burn::backend::Flex;
use burn::module::Module;
use chaoscast::data::window::{
    SplitFractions, WindowSpec, chronological_split, chronological_windows,
};
use chaoscast::data::{Dataset, read_dataset};
use chaoscast::metrics::{ForecastReport, VPT_THRESHOLD, evaluate, persistence};
use chaoscast::plots;
use chaoscast::run::{RunConfig, load_metrics, load_model, write_atomic};
use chaoscast::train::trainer::ScaledWindows;
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
    let sets = chronological_windows(data.len(), spec, SplitFractions::default())?;
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
    let [_, _, test_rows] = chronological_split(data.len(), SplitFractions::default())?;
    let room = test_rows.len().saturating_sub(spec.lookback);
    let rollout_steps = args.rollout.unwrap_or((4 * spec.horizon).min(room));
    let rollout = if rollout_steps > spec.horizon {
        let long = WindowSpec {
            horizon: rollout_steps,
            ..spec
        };
        let starts = chronological_windows(data.len(), long, SplitFractions::default())
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
    println!(
        "wrote {}/report.json, nrmse_steps.csv, nrmse.png, loss.png, forecast_1..3.png",
        args.run.display()
    );
    Ok(out)
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

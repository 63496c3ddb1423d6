//! `chaoscast eval`: score a run's best model on the test split, with plots.

use std::path::PathBuf;

use anyhow::Result;
use burn::backend::Flex;
use chaoscast::data::read_dataset;
use chaoscast::data::window::{SplitFractions, chronological_windows};
use chaoscast::metrics::{ForecastReport, VPT_THRESHOLD, evaluate, persistence};
use chaoscast::plots;
use chaoscast::run::{RunConfig, load_metrics, load_model, write_atomic};
use chaoscast::train::trainer::ScaledWindows;
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A run folder written by `chaoscast train`.
    run: PathBuf,
    /// Evaluate on another dataset file with the same variables [default: the training data].
    #[arg(long)]
    data: Option<PathBuf>,
}

#[derive(Serialize)]
struct Report {
    model: &'static str,
    data: PathBuf,
    horizon: usize,
    lookback: usize,
    nrmse_median: f64,
    nrmse_mean: f64,
    vpt_median_steps: f64,
    vpt_median_lyapunov: Option<f64>,
    model_report: ForecastReport,
    persistence: ForecastReport,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let cfg = RunConfig::load(&args.run)?;
    let path = args.data.clone().unwrap_or(cfg.data_path.clone());
    let data = read_dataset(&path)?;
    if data.names != cfg.names {
        anyhow::bail!(
            "{} has variables {} ..., but the run was trained on {} ...",
            path.display(),
            data.names
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            cfg.names
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let device = Default::default();
    let model = load_model::<Flex>(&cfg, &args.run, &device)?;
    let spec = cfg.train.windows();
    let sets = chronological_windows(data.len(), spec, SplitFractions::default())?;
    let vars = data.vars();
    let norm = &cfg.normalizer;
    let mut preds =
        ScaledWindows::new(&data, norm, spec).forecast(&model, &sets.test, 256, &device)?;
    norm.denormalize(&mut preds);
    let truths: Vec<f64> = sets
        .test
        .iter()
        .flat_map(|&s| {
            let first = s + spec.lookback;
            &data.values[first * vars..(first + spec.horizon) * vars]
        })
        .copied()
        .collect();
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
    let out = Report {
        model: cfg.train.model.name(),
        data: path.clone(),
        horizon: spec.horizon,
        lookback: spec.lookback,
        nrmse_median: report.nrmse_median,
        nrmse_mean: report.nrmse_mean,
        vpt_median_steps: report.vpt_median_steps,
        vpt_median_lyapunov: report.vpt_median_lyapunov,
        model_report: report.clone(),
        persistence: floor.clone(),
    };
    write_atomic(
        &args.run.join("report.json"),
        serde_json::to_string_pretty(&out)?.as_bytes(),
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
    println!(
        "{} on {} test windows (H = {}): median NRMSE {:.4} (mean {:.4}), median VPT {} steps{}; persistence {:.4}",
        out.model,
        report.windows,
        spec.horizon,
        report.nrmse_median,
        report.nrmse_mean,
        report.vpt_median_steps,
        report
            .vpt_median_lyapunov
            .map(|l| format!(" = {l:.2} Lyapunov times"))
            .unwrap_or_default(),
        floor.nrmse_median
    );
    println!(
        "wrote {}/report.json, nrmse.png, loss.png, forecast_1..3.png",
        args.run.display()
    );
    Ok(())
}

//! `chaoscast eval`: score a run's best model on the test split, with plots.

use std::path::PathBuf;

use anyhow::{Result, bail};
use chaoscast::eval::{ClimateOptions, EnsembleOptions, EvalOptions};

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

pub(crate) use chaoscast::eval::Report;

pub(crate) fn run(args: Args) -> Result<()> {
    evaluate_run(&args, false).map(|_| ())
}

/// Evaluates a run (see [`chaoscast::eval::evaluate_run`]), which writes its report and plots,
/// and prints a summary unless `quiet`.
pub(crate) fn evaluate_run(args: &Args, quiet: bool) -> Result<Report> {
    if args.ensemble == Some(0) {
        bail!("--ensemble must be at least 1 member");
    }
    let perturb = args.perturb.unwrap_or(0.01);
    if !(perturb.is_finite() && perturb >= 0.0) {
        bail!("--perturb must be zero or positive, got {perturb}");
    }
    if args.steps == Some(0) {
        bail!("--steps must be at least 1");
    }
    let options = EvalOptions {
        data: args.data.clone(),
        rollout: args.rollout,
        climate: args.climate.then_some(ClimateOptions {
            steps: args.steps,
            starts: args.starts,
        }),
        ensemble: args
            .ensemble
            .map(|members| EnsembleOptions { members, perturb }),
    };
    let log = |line: &str| {
        if !quiet {
            eprintln!("{line}");
        }
    };
    let out = chaoscast::eval::evaluate_run(&args.run, &options, &log)?;
    let (report, floor, rollout) = (&out.model_report, &out.persistence, &out.rollout);
    let (spec, rollout_steps) = (out.horizon, out.rollout_steps);
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
        spec,
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

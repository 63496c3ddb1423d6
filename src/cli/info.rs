//! `chaoscast info`: a dataset's recipe, provenance and per-variable statistics.

use std::path::PathBuf;

use anyhow::Result;
use chaoscast::data::window::{DEFAULT_LOOKBACK, Split, SplitFractions, WindowSpec, split_windows};
use chaoscast::data::{Dataset, Format, read_dataset};
use chaoscast::metrics::{VPT_THRESHOLD, persistence};
use chaoscast::train::trainer::training_normalizer;

use super::shown;

#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// A dataset file written by `chaoscast generate` (.parquet, or .csv with its .json sidecar).
    file: PathBuf,
    /// List every variable (by default, datasets with many variables show the first and last few).
    #[arg(long)]
    all: bool,
}

pub(crate) fn run(args: Args) -> Result<()> {
    let data = read_dataset(&args.file)?;
    let meta = &data.meta;
    let r = &meta.recipe;
    let params: Vec<String> = r.params.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    let format = match Format::from_path(&args.file) {
        Format::Parquet => "parquet",
        Format::Csv => "csv + json sidecar",
    };
    println!("file:        {} ({format})", shown(&args.file));
    println!("system:      {} ({})", r.system, params.join(", "));
    println!(
        "samples:     {} at dt = {} (t = 0 .. {}), after a discarded transient of {}",
        data.len(),
        r.dt,
        // Sample times are i·Δt; round away the last bits of float noise for display.
        (data.t.last().copied().unwrap_or(0.0) * 1e9).round() / 1e9,
        r.transient
    );
    let integrator = match (r.integrator, r.step) {
        (chaoscast::systems::integrate::Integrator::Rk4, Some(h)) => format!("RK4, step {h}"),
        (other, _) => format!(
            "{}, rtol = {:e}, atol = {:e}",
            other.as_str().to_uppercase(),
            r.rtol,
            r.atol
        ),
    };
    println!(
        "integrator:  {integrator}; seed {}, initial perturbation {}",
        r.seed, r.perturbation
    );
    if let Some(h) = r.horizon {
        println!("horizon:     {h} steps (from the recipe)");
    }
    if let Some(l) = r.lyapunov {
        println!("lyapunov:    {l} (from the recipe)");
    }
    if let Some(l) = &meta.lyapunov {
        println!(
            "lyapunov:    {:.4} ± {:.4} (measured over {} seeds)",
            l.mean,
            l.std,
            l.per_seed.len()
        );
    }
    if let Some(l) = meta.exponent() {
        println!(
            "             one Lyapunov time = {:.2} steps of dt",
            1.0 / (l * r.dt)
        );
    }
    println!(
        "written by:  chaoscast {} (metadata format {})",
        meta.chaoscast_version, meta.format_version
    );
    persistence_line(&data);
    println!();
    println!(
        "{:<10} {:>12} {:>12} {:>12} {:>12}",
        "variable", "mean", "std", "min", "max"
    );
    let stats = data.stats();
    let n = stats.len();
    for (i, s) in stats.iter().enumerate() {
        let shown_row = args.all || n <= 12 || i < 6 || i >= n - 3;
        if shown_row {
            println!(
                "{:<10} {:>12.5} {:>12.5} {:>12.5} {:>12.5}",
                s.name, s.mean, s.std, s.min, s.max
            );
        } else if i == 6 {
            println!("... {} more variables (--all lists every one)", n - 9);
        }
    }
    Ok(())
}

/// The persistence baseline on the test split, when the dataset has a horizon and is long enough
/// for the default lookback.
fn persistence_line(data: &Dataset) {
    let Ok(horizon) = data.meta.horizon(None) else {
        return;
    };
    let spec = WindowSpec {
        lookback: DEFAULT_LOOKBACK,
        horizon,
        stride: 1,
    };
    let (Ok(sets), Ok(norm)) = (
        split_windows(
            &data.segments(),
            spec,
            Split::Chronological,
            SplitFractions::default(),
        ),
        training_normalizer(data, Split::Chronological),
    ) else {
        return;
    };
    let dt_lambda = data.meta.dt_lambda();
    if let Ok(r) = persistence(
        &data.values,
        &sets.test,
        spec,
        &norm.std,
        VPT_THRESHOLD,
        dt_lambda,
    ) {
        println!(
            "persistence: median test NRMSE {:.3} (mean {:.3}), median VPT {} steps over {} test \
             windows (lookback {}, horizon {horizon}): the floor every model must beat",
            r.nrmse_median, r.nrmse_mean, r.vpt_median_steps, r.windows, DEFAULT_LOOKBACK
        );
    }
}

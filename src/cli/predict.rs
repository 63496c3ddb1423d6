//! `chaoscast predict`: forecast from a history file with a trained run.

use std::path::PathBuf;

use anyhow::{Result, bail};
use chaoscast::data::store::{Table, read_table, write_table};
use chaoscast::forecaster::Forecaster;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
    chaoscast predict runs/lstm --input history.csv --output forecast.csv\n\n\
    The input is a CSV (with a header) or Parquet table holding at least the model's variables as\n\
    columns; its last L rows (the run's lookback) are the history. The output has the same\n\
    variables for H rows (or --steps rows, forecast autoregressively), and a t column continued\n\
    at the run's Δt when the input has one.")]
pub(crate) struct Args {
    /// A run folder written by `chaoscast train`.
    run: PathBuf,
    /// The history: CSV or Parquet with the run's variables as columns.
    #[arg(long, short)]
    input: PathBuf,
    /// Where to write the forecast (CSV or Parquet, by extension).
    #[arg(long, short)]
    output: PathBuf,
    /// Rows to forecast [default: the run's horizon H]; more than H feeds forecasts back.
    #[arg(long)]
    steps: Option<usize>,
    /// Replace an existing output file.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: Args) -> Result<()> {
    if args.output.exists() && !args.force {
        bail!(
            "{} already exists; pass --force to overwrite it",
            args.output.display()
        );
    }
    let forecaster = Forecaster::load(&args.run)?;
    let input = read_table(&args.input)?;
    let history = input.rows_of(forecaster.names(), &args.input)?;
    if history.len() < forecaster.lookback() {
        bail!(
            "{} has {} rows; the model reads the last {} (its lookback)",
            args.input.display(),
            history.len(),
            forecaster.lookback()
        );
    }
    let steps = args.steps.unwrap_or(forecaster.horizon());
    if steps == 0 {
        bail!("--steps must be at least 1");
    }
    let rows = forecaster.rollout(&history, steps)?;
    let mut names = forecaster.names().to_vec();
    let mut values = Vec::with_capacity(rows.len() * (names.len() + 1));
    let last_t = input.column("t").and_then(|t| t.last().copied());
    if last_t.is_some() {
        names.insert(0, "t".into());
    }
    let dt = forecaster.dt();
    for (k, row) in rows.iter().enumerate() {
        if let Some(t0) = last_t {
            values.push(t0 + (k + 1) as f64 * dt);
        }
        values.extend(row.iter().map(|v| f64::from(*v)));
    }
    write_table(&Table { names, values }, &args.output, args.force)?;
    println!(
        "wrote {} rows of {} to {}",
        rows.len(),
        forecaster.names().join(", "),
        args.output.display()
    );
    Ok(())
}

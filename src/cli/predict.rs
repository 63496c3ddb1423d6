//! `chaoscast predict`: forecast from a history file with a trained run.

use std::path::PathBuf;

use anyhow::{Result, bail};
use chaoscast::data::store::{Table, read_table, write_table};
use chaoscast::forecaster::{Ensemble, Forecaster};

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
    chaoscast predict runs/lstm --input history.csv --output forecast.csv\n\n\
    The input is a CSV (with a header) or Parquet table holding at least the model's variables as\n\
    columns; its last L rows (the run's lookback) are the history. The output has the same\n\
    variables for H rows (or --steps rows, forecast autoregressively), and a t column continued\n\
    at the run's Δt when the input has one. With --ensemble K the output holds the ensemble's mean\n\
    (the variables' own columns), its spread (NAME_spread, the members' standard deviation) and\n\
    every member (NAME_mN); --members adds the runs of other seeds, each with K members.")]
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
    /// Forecast an ensemble of K members from perturbed histories (member 0 unperturbed).
    #[arg(long, value_name = "K")]
    ensemble: Option<usize>,
    /// The ensemble's perturbation: Gaussian noise of this many training standard deviations
    /// added to every history value [default: 0.01].
    #[arg(long, value_name = "SIGMA", requires = "ensemble")]
    perturb: Option<f64>,
    /// Seed of the perturbations [default: 0].
    #[arg(long, requires = "ensemble")]
    ensemble_seed: Option<u64>,
    /// More run folders (e.g. other seeds of the same recipe) whose models join the ensemble,
    /// comma-separated.
    #[arg(
        long,
        value_name = "RUNS",
        requires = "ensemble",
        value_delimiter = ','
    )]
    members: Vec<PathBuf>,
}

/// The ensemble of `k` members of the run and of each `--members` run.
fn ensemble(
    forecaster: &Forecaster,
    args: &Args,
    input: &Table,
    history: &[Vec<f32>],
    k: usize,
    steps: usize,
) -> Result<Ensemble> {
    if k == 0 {
        bail!("--ensemble must be at least 1 member");
    }
    let perturb = args.perturb.unwrap_or(0.01);
    if !(perturb.is_finite() && perturb >= 0.0) {
        bail!("--perturb must be zero or positive, got {perturb}");
    }
    let seed = args.ensemble_seed.unwrap_or(0);
    let mut members = forecaster
        .ensemble(history, k, perturb, steps, seed)?
        .members;
    for run in &args.members {
        let other = Forecaster::load(run)?;
        if other.names() != forecaster.names() {
            bail!(
                "{} models {}, not {} like {}",
                run.display(),
                other.names().join(", "),
                forecaster.names().join(", "),
                args.run.display()
            );
        }
        let history = input.rows_of(other.names(), &args.input)?;
        members.extend(other.ensemble(&history, k, perturb, steps, seed)?.members);
    }
    Ok(Ensemble::of(members))
}

/// The spread and member columns: (name, one value per step).
fn ensemble_columns(e: &Ensemble, names: &[String]) -> Vec<(String, Vec<f64>)> {
    let column = |rows: &[Vec<f32>], j: usize| rows.iter().map(|r| f64::from(r[j])).collect();
    let mut out: Vec<(String, Vec<f64>)> = names
        .iter()
        .enumerate()
        .map(|(j, n)| (format!("{n}_spread"), column(&e.spread, j)))
        .collect();
    for (m, member) in e.members.iter().enumerate() {
        for (j, n) in names.iter().enumerate() {
            out.push((format!("{n}_m{m}"), column(member, j)));
        }
    }
    out
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
    let (rows, extra) = match args.ensemble {
        None => (forecaster.rollout(&history, steps)?, Vec::new()),
        Some(k) => {
            let e = ensemble(&forecaster, &args, &input, &history, k, steps)?;
            (e.mean.clone(), ensemble_columns(&e, forecaster.names()))
        }
    };
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
        for (_, column) in &extra {
            values.push(column[k]);
        }
    }
    names.extend(extra.iter().map(|(name, _)| name.clone()));
    write_table(&Table { names, values }, &args.output, args.force)?;
    println!(
        "wrote {} rows of {} to {}",
        rows.len(),
        forecaster.names().join(", "),
        args.output.display()
    );
    Ok(())
}

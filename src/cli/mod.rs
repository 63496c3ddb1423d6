//! Command-line parsing and dispatch. Each subcommand lives in its own file; none of the library
//! knows about flags, progress bars or exit codes.

mod choices;
mod compare;
mod demo;
mod eval;
mod generate;
mod info;
mod lyapunov;
mod predict;
mod progress;
mod train;

use std::path::Path;

use anyhow::Result;
use chaoscast::data::RecipeSpec;
use chaoscast::systems::SystemName;
use clap::Parser;
use clap::Subcommand;

/// Forecast chaotic systems: generate benchmark data, train neural forecasters, evaluate them.
#[derive(Debug, Parser)]
#[command(
    name = "chaoscast",
    version,
    about = "Forecast chaotic systems: generate benchmark data with its recipe, measure Lyapunov \
             exponents, train and evaluate neural forecasters",
    long_about = None
)]
#[command(allow_negative_numbers = true)]
struct Cli {
    /// Print nothing but errors and final results (no progress bars or status lines).
    #[arg(long, short, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

// Parsed once per process: boxing the large `train` arguments would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Integrate a chaotic system and write the sampled trajectory (Parquet or CSV) with its
    /// recipe.
    Generate(generate::Args),
    /// Estimate the largest Lyapunov exponent of a system, with its spread over seeds.
    Lyapunov(lyapunov::Args),
    /// Print a dataset's recipe and per-variable statistics.
    Info(info::Args),
    /// Train a forecaster (lstm, gru, fdn, transformer) on a dataset and write a run folder.
    Train(train::Args),
    /// Score a run's best model on the test split: report.json and plots in the run folder.
    Eval(eval::Args),
    /// Forecast from a history file (CSV or Parquet) with a trained run.
    Predict(predict::Args),
    /// Train and evaluate every cell of an experiment (models × bio variants × seeds ×
    /// datasets) and write a comparison table.
    Compare(compare::Args),
    /// The whole pipeline at a small size on the CPU: generate Thomas, train an LSTM and its bio
    /// twin, evaluate and compare them (about 4 minutes).
    Demo(demo::Args),
}

/// Parses the command line and runs the subcommand.
///
/// Usage errors are cut to their first line (clap adds usage and tips below it), so that every
/// error is one sentence; `--help` and `--version` print as usual.
pub fn run() -> Result<()> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if err.use_stderr() => {
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // A bad enumerated value keeps its list of accepted ones.
            let values = text
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("[possible values:"))
                .map(|l| format!(" {l}"))
                .unwrap_or_default();
            anyhow::bail!("{first}{values} (see --help)");
        }
        Err(err) => err.exit(),
    };
    match cli.command {
        Command::Generate(args) => generate::run(args, cli.quiet),
        Command::Lyapunov(args) => lyapunov::run(args, cli.quiet),
        Command::Info(args) => info::run(args),
        Command::Train(args) => train::run(args, cli.quiet),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Compare(args) => compare::run(args, cli.quiet),
        Command::Demo(args) => demo::run(args, cli.quiet),
    }
}

/// The system to work on: a name or a TOML recipe file, plus parameter overrides.
#[derive(Debug, clap::Args)]
pub(crate) struct SystemArgs {
    /// A system name (thomas, lorenz96-two-scale, lorenz63, lorenz96) or a TOML recipe file.
    source: String,
    /// A system parameter by its symbol, e.g. F=10, a=1.85, K=36 (repeatable; case-sensitive).
    #[arg(long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    params: Vec<(String, f64)>,
}

impl SystemArgs {
    /// A recipe spec: from the file if the source ends in `.toml` or names a file, else for the
    /// named system; then the `--param` overrides.
    pub(crate) fn spec(&self) -> Result<RecipeSpec> {
        let path = Path::new(&self.source);
        let mut spec = if self.source.ends_with(".toml") || path.is_file() {
            RecipeSpec::from_toml_file(path)?
        } else {
            RecipeSpec::for_system(self.source.parse::<SystemName>()?)
        };
        spec.params.extend(self.params.iter().cloned());
        Ok(spec)
    }
}

/// Parses `NAME=VALUE` for `--param`.
fn parse_param(s: &str) -> std::result::Result<(String, f64), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE"))?;
    let value: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("'{value}' is not a number"))?;
    Ok((name.trim().to_string(), value))
}

/// Formats a path for messages.
pub(crate) fn shown(path: &Path) -> String {
    path.display().to_string()
}

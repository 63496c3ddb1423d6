//! Command-line parsing and dispatch. Each subcommand lives in its own file; none of the library
//! knows about flags, progress bars or exit codes.

mod choices;
mod compare;
mod demo;
mod eval;
mod export;
mod generate;
mod info;
mod lyapunov;
mod predict;
mod progress;
mod settings;
mod train;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

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
    /// Write a run's trained weights to a file other tools read (safetensors).
    Export(export::Args),
    /// Train and evaluate every cell of an experiment (models × bio variants × seeds ×
    /// datasets) and write a comparison table.
    Compare(compare::Args),
    /// The whole pipeline at a small size on the CPU: generate Thomas, train a GRU and its bio
    /// twin, fit the echo state network, evaluate and compare them (about two minutes).
    Demo(demo::Args),
}

/// Set by SIGTERM or SIGUSR1 while training runs: training stops after the epoch's checkpoint.
pub(crate) static STOP: AtomicBool = AtomicBool::new(false);
/// Whether SIGTERM or SIGUSR1 ends the process at once: always, except while training runs
/// and no stop has been asked for yet (a second signal then ends it at once).
static DIE: AtomicBool = AtomicBool::new(true);

/// Installs the handlers of SIGTERM and SIGUSR1 (see [`STOP`]).
fn install_signals() {
    use signal_hook::consts::{SIGTERM, SIGUSR1};
    use signal_hook::flag;
    for (signal, status) in [(SIGTERM, 128 + SIGTERM), (SIGUSR1, 128 + SIGUSR1)] {
        // The order matters: the shutdown is checked before this signal arms it.
        let installed = flag::register_conditional_shutdown(signal, status, &DIE)
            .and_then(|_| flag::register(signal, &STOP))
            .and_then(|_| flag::register(signal, &DIE));
        if let Err(e) = installed {
            eprintln!("warning: cannot handle signal {signal} ({e}); it will end training at once");
        }
    }
}

/// While it lives, SIGTERM and SIGUSR1 stop training at the next epoch's end instead of ending
/// the process.
pub(crate) struct Graceful;

impl Graceful {
    pub(crate) fn start() -> Self {
        DIE.store(STOP.load(Ordering::SeqCst), Ordering::SeqCst);
        Graceful
    }
}

impl Drop for Graceful {
    fn drop(&mut self) {
        DIE.store(true, Ordering::SeqCst);
    }
}

/// Under SLURM the CPU backend computes on the task's CPUs (`SLURM_CPUS_PER_TASK`), not every
/// core of the node; `RAYON_NUM_THREADS`, when set, decides instead (rayon reads it itself).
fn size_thread_pool() -> Result<()> {
    if std::env::var_os("RAYON_NUM_THREADS").is_some() {
        return Ok(());
    }
    let Ok(cpus) = std::env::var("SLURM_CPUS_PER_TASK") else {
        return Ok(());
    };
    let threads: usize =
        cpus.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            anyhow::anyhow!("SLURM_CPUS_PER_TASK is '{cpus}', not a positive count")
        })?;
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .map_err(|e| anyhow::anyhow!("cannot size the thread pool to {threads}: {e}"))
}

/// Parses the command line and runs the subcommand.
///
/// Usage errors are cut to their first line (clap adds usage and tips below it), so that every
/// error is one sentence; `--help` and `--version` print as usual.
pub fn run() -> Result<()> {
    install_signals();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if err.use_stderr() => {
            let text = err.to_string();
            let mut lines = text.lines();
            let first = lines.next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // A first line that announces a list ("the following required arguments were not
            // provided:") keeps the list, on the same line.
            let first = if first.ends_with(':') {
                let list: Vec<&str> = lines.map(str::trim).take_while(|l| !l.is_empty()).collect();
                format!("{first} {}", list.join(", "))
            } else {
                first.to_string()
            };
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
    // After parsing, so that --help and a usage error never depend on the environment.
    size_thread_pool()?;
    match cli.command {
        Command::Generate(args) => generate::run(args, cli.quiet),
        Command::Lyapunov(args) => lyapunov::run(args, cli.quiet),
        Command::Info(args) => info::run(args),
        Command::Train(args) => train::run(args, cli.quiet),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Export(args) => export::run(args),
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

//! `chaoscast generate`: recipe or system name plus flags in, one dataset file out.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use chaoscast::data::store::check_output;
use chaoscast::data::{Format, generate, write_dataset};
use chaoscast::systems::lyapunov::{LyapunovConfig, largest_lyapunov};

use super::progress::Reporter;
use super::{SystemArgs, shown};

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    chaoscast generate datasets/thomas.toml --output thomas.parquet\n  \
    chaoscast generate lorenz96-two-scale --param F=10 --samples 2000 --output l96.csv\n\n\
    Systems and their parameters (--param NAME=VALUE):\n  \
    thomas              a = 1.85, b = 10\n  \
    lorenz96-two-scale  K = 36, J = 10, h = 1, b = 10, c = 10, F = 20\n  \
    lorenz63            sigma = 10, rho = 28, beta = 8/3\n  \
    lorenz96            N = 40, F = 8\n\n\
    Flags override the recipe file.")]
#[command(allow_negative_numbers = true)]
pub(crate) struct Args {
    #[command(flatten)]
    system: SystemArgs,
    /// Number of samples to record [default: 10000].
    #[arg(long)]
    samples: Option<usize>,
    /// Sampling interval Δt [default: the system's, e.g. 0.0497 for thomas, 0.1 for lorenz96-two-scale].
    #[arg(long)]
    dt: Option<f64>,
    /// Seed of the initial-state perturbation [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Time integrated and discarded before recording [default: the system's, e.g. 100 for thomas].
    #[arg(long)]
    transient: Option<f64>,
    /// Relative tolerance of the adaptive integrators [default: 1e-10].
    #[arg(long)]
    rtol: Option<f64>,
    /// Absolute tolerance of the adaptive integrators [default: 1e-10].
    #[arg(long)]
    atol: Option<f64>,
    /// Standard deviation of the Gaussian perturbation of the initial state [default: 0.001].
    #[arg(long)]
    perturbation: Option<f64>,
    /// Forecast horizon in steps to record with the data (used by training).
    #[arg(long)]
    horizon: Option<usize>,
    /// Integrator: dop853 (ours, adaptive, the default), dopri5 (`ode_solvers`' adaptive 5(4))
    /// or rk4 (classical Runge–Kutta at the fixed --step) [default: dop853].
    #[arg(long, value_parser = ["dop853", "dopri5", "rk4"])]
    integrator: Option<String>,
    /// RK4's fixed step; must divide dt.
    #[arg(long, value_name = "H")]
    step: Option<f64>,
    /// Trajectories to integrate, in parallel over the cores, into one file with a trajectory
    /// column: trajectory k from the initial state perturbed with seed + k [default: 1].
    #[arg(long, value_name = "N")]
    trajectories: Option<usize>,
    /// Also estimate the largest Lyapunov exponent and store it with the data.
    #[arg(long)]
    lyapunov: bool,
    /// File format [default: from the output's extension: csv for .csv, else parquet].
    #[arg(long, value_parser = ["parquet", "csv"])]
    format: Option<String>,
    /// Output file; a CSV file gets its recipe in a .json sidecar.
    #[arg(long, short)]
    output: PathBuf,
    /// Overwrite the output if it exists.
    #[arg(long)]
    force: bool,
}

pub(crate) fn run(args: Args, quiet: bool) -> Result<()> {
    let mut spec = args.system.spec()?;
    let overrides = [
        (&mut spec.dt, args.dt),
        (&mut spec.transient, args.transient),
        (&mut spec.rtol, args.rtol),
        (&mut spec.atol, args.atol),
        (&mut spec.perturbation, args.perturbation),
    ];
    for (field, flag) in overrides {
        if flag.is_some() {
            *field = flag;
        }
    }
    spec.samples = args.samples.or(spec.samples);
    spec.seed = args.seed.or(spec.seed);
    spec.horizon = args.horizon.or(spec.horizon);
    if let Some(name) = &args.integrator {
        spec.integrator = Some(name.parse()?);
    }
    spec.step = args.step.or(spec.step);
    spec.trajectories = args.trajectories.or(spec.trajectories);
    let recipe = spec.resolve()?;
    let format = match args.format.as_deref() {
        Some(f) => f.parse()?,
        None => Format::from_path(&args.output),
    };
    check_output(&args.output, format, args.force)?;

    let start = Instant::now();
    let label = format!("integrating {}", recipe.system);
    let reporter = Reporter::new(&label, quiet);
    let generated = generate(&recipe, &reporter);
    reporter.finish();
    let mut data = generated?;
    if args.lyapunov {
        let mut cfg = LyapunovConfig::for_system(recipe.system);
        cfg.seed = recipe.seed;
        let system = recipe.system.build(&recipe.params)?;
        let reporter = Reporter::new("estimating the Lyapunov exponent", quiet);
        let estimate = largest_lyapunov(system.as_ref(), &cfg, &reporter);
        reporter.finish();
        data.meta.lyapunov = Some(estimate?);
        data.meta.lyapunov_config = Some(cfg);
    }
    write_dataset(&data, &args.output, format, args.force)?;
    if !quiet {
        eprintln!(
            "wrote {} samples{} of {} ({} variables, dt = {}) to {} in {:.1} s",
            data.len(),
            if recipe.trajectories > 1 {
                format!(
                    " ({} trajectories of {})",
                    recipe.trajectories, recipe.samples
                )
            } else {
                String::new()
            },
            recipe.system,
            data.vars(),
            recipe.dt,
            shown(&args.output),
            start.elapsed().as_secs_f64()
        );
        if let Some(l) = &data.meta.lyapunov {
            eprintln!("largest Lyapunov exponent: {:.4} ± {:.4}", l.mean, l.std);
        }
    }
    Ok(())
}

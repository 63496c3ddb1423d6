//! `chaoscast lyapunov`: the largest Lyapunov exponent of a system and its spread over seeds.

use std::time::Instant;

use anyhow::Result;
use chaoscast::systems::lyapunov::{LyapunovConfig, largest_lyapunov};

use super::SystemArgs;
use super::progress::Reporter;

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  chaoscast lyapunov lorenz63 --seeds 5\n\n\
    Method: tangent (variational) equations integrated with Dop853, renormalised every tau\n\
    (Benettin et al. 1980); each seed perturbs the initial state and the tangent vector.")]
#[command(allow_negative_numbers = true)]
pub(crate) struct Args {
    #[command(flatten)]
    system: SystemArgs,
    /// Number of independent runs [default: 3].
    #[arg(long)]
    seeds: Option<usize>,
    /// Seed of the first run; run i uses seed + i [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Renormalisation interval τ [default: the system's].
    #[arg(long)]
    tau: Option<f64>,
    /// Averaging time after the transient [default: the system's].
    #[arg(long)]
    duration: Option<f64>,
    /// Discarded transient [default: the system's].
    #[arg(long)]
    transient: Option<f64>,
    /// Relative tolerance of the integrator [default: 1e-9].
    #[arg(long)]
    rtol: Option<f64>,
    /// Absolute tolerance of the integrator [default: 1e-9].
    #[arg(long)]
    atol: Option<f64>,
}

pub(crate) fn run(args: Args, quiet: bool) -> Result<()> {
    let spec = args.system.spec()?;
    let recipe = spec.resolve()?;
    let system = recipe.system.build(&recipe.params)?;
    let mut cfg = LyapunovConfig::for_system(recipe.system);
    cfg.seeds = args.seeds.unwrap_or(cfg.seeds);
    cfg.seed = args.seed.unwrap_or(cfg.seed);
    cfg.tau = args.tau.unwrap_or(cfg.tau);
    cfg.duration = args.duration.unwrap_or(cfg.duration);
    cfg.transient = args.transient.unwrap_or(cfg.transient);
    cfg.rtol = args.rtol.unwrap_or(cfg.rtol);
    cfg.atol = args.atol.unwrap_or(cfg.atol);
    cfg.validate()?;

    let start = Instant::now();
    let reporter = Reporter::new(&format!("lyapunov {}", recipe.system), quiet);
    let estimate = largest_lyapunov(system.as_ref(), &cfg, &reporter);
    reporter.finish();
    let estimate = estimate?;
    let runs: Vec<String> = estimate
        .per_seed
        .iter()
        .map(|v| format!("{v:.4}"))
        .collect();
    println!(
        "{}: largest Lyapunov exponent {:.4} ± {:.4} (std over {} seeds: {}; spread {:.1} %)",
        recipe.system,
        estimate.mean,
        estimate.std,
        cfg.seeds,
        runs.join(", "),
        100.0 * estimate.spread()
    );
    println!(
        "Lyapunov time 1/λ = {:.4}; settings: tau = {}, transient = {}, duration = {}, rtol = {:e}, atol = {:e}; {:.1} s",
        1.0 / estimate.mean,
        cfg.tau,
        cfg.transient,
        cfg.duration,
        cfg.rtol,
        cfg.atol,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

//! `chaoscast demo`: the whole pipeline at a small size on the CPU — generate a Thomas dataset,
//! train the default GRU and its bio twin on the same seed and fit the echo state network,
//! evaluate all three, compare.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use chaoscast::data::{RecipeSpec, generate, write_dataset};
use chaoscast::plots::{Bars, grouped_bars};
use chaoscast::progress::NoProgress;
use chaoscast::systems::SystemName;

use super::choices::{BioName, ModelName};
use super::eval;
use super::train::{Settings, train_settings};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Writes into OUTPUT: thomas.parquet, gru/, gru-bio/ and esn/ (run folders with report.json\n\
    and plots), comparison.png and comparison.md. About two minutes on 2 cores."
)]
pub(crate) struct Args {
    /// Folder for everything the demo writes.
    #[arg(long, short, default_value = "runs/demo")]
    output: PathBuf,
    /// Samples of the Thomas series (the paper's recipe has 10,000).
    #[arg(long, default_value_t = 10_000)]
    samples: usize,
    /// Training epochs of each neural model (the default recipe runs 280).
    #[arg(long, default_value_t = 40)]
    epochs: usize,
    /// The bio twin's preset: paper-default (the default: the less harmful of the two in the
    /// comparison grid, see the README) or paper-tuned.
    #[arg(long, default_value = "paper-default", value_parser = ["paper-tuned", "paper-default"])]
    bio: String,
    /// Seed of every model.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

/// One trained and evaluated model of the demo.
struct Row {
    label: String,
    bio: String,
    epochs: usize,
    seconds: f64,
    report: eval::Report,
}

pub(crate) fn run(args: Args, quiet: bool) -> Result<()> {
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let data = args.output.join("thomas.parquet");
    let mut spec = RecipeSpec::for_system(SystemName::Thomas);
    spec.samples = Some(args.samples);
    // The paper recipe's horizon: one Lyapunov time (λ = 0.4918) at Δt = 0.0497.
    spec.horizon = Some(41);
    spec.lyapunov = Some(0.4918);
    let recipe = spec.resolve()?;
    let series = generate(&recipe, &NoProgress)?;
    write_dataset(&series, &data, chaoscast::data::Format::Parquet, true)?;
    println!(
        "1/5 generated {} samples of the Thomas attractor (Δt = {}, horizon 41 steps = one Lyapunov time): {}",
        args.samples,
        recipe.dt,
        data.display()
    );

    let base = Settings {
        data: Some(data.clone()),
        seed: Some(args.seed),
        ..Settings::default()
    };
    let jobs = [
        (
            "gru",
            "GRU",
            Settings {
                model: Some(ModelName::Gru),
                epochs: Some(args.epochs),
                ..base.clone()
            },
        ),
        (
            "gru-bio",
            "GRU",
            Settings {
                model: Some(ModelName::Gru),
                epochs: Some(args.epochs),
                bio: Some(
                    <BioName as clap::ValueEnum>::from_str(&args.bio, false)
                        .map_err(anyhow::Error::msg)?,
                ),
                ..base.clone()
            },
        ),
        // The echo state network with the values `--esn-search` chose on this recipe for
        // every seed (docs/results/quality-thomas): ρ = 0.3, a = 1, β = 1e-6.
        (
            "esn",
            "ESN",
            Settings {
                model: Some(ModelName::Esn),
                spectral_radius: Some(0.3),
                leak: Some(1.0),
                ridge: Some(1e-6),
                ..base.clone()
            },
        ),
    ];
    let mut rows = Vec::new();
    for (step, (folder_name, label, settings)) in jobs.into_iter().enumerate() {
        let folder = args.output.join(folder_name);
        let settings = Settings {
            output: Some(folder.clone()),
            ..settings
        };
        let start = Instant::now();
        let summary = train_settings(&settings, None, true, quiet)?;
        let seconds = start.elapsed().as_secs_f64();
        let report = eval::evaluate_run(
            &eval::Args {
                run: folder.clone(),
                data: None,
                rollout: None,
                climate: false,
                steps: None,
                starts: None,
                ensemble: None,
                perturb: None,
            },
            true,
        )?;
        let bio = settings.bio.map_or("none", BioName::as_str).to_string();
        println!(
            "{}/5 trained the {label}{} in {seconds:.0} s: test median NRMSE {:.4}, median VPT {} steps = {:.2} Lyapunov times",
            step + 2,
            if bio == "none" {
                String::new()
            } else {
                format!(" with bio preset {bio}")
            },
            report.nrmse_median,
            report.vpt_median_steps,
            report.vpt_median_lyapunov.unwrap_or(f64::NAN)
        );
        rows.push(Row {
            label: label.into(),
            bio,
            epochs: summary.epochs,
            seconds,
            report,
        });
    }

    let persistence = rows[0].report.persistence_nrmse();
    let mut table = String::from(
        "| model | bio | epochs | training | median NRMSE | mean NRMSE | median VPT (steps) | median VPT (Lyapunov times) |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in &rows {
        table.push_str(&format!(
            "| {} | {} | {} | {:.0} s | {:.4} | {:.4} | {} | {:.2} |\n",
            r.label,
            r.bio,
            r.epochs,
            r.seconds,
            r.report.nrmse_median,
            r.report.nrmse_mean,
            r.report.vpt_median_steps,
            r.report.vpt_median_lyapunov.unwrap_or(f64::NAN)
        ));
    }
    table.push_str(&format!(
        "| persistence (last value repeated) | — | — | — | {persistence:.4} | — | — | — |\n"
    ));
    chaoscast::run::write_atomic(&args.output.join("comparison.md"), table.as_bytes())?;
    let labels: Vec<String> = rows
        .iter()
        .map(|r| match r.bio.as_str() {
            "none" => r.label.clone(),
            bio => format!("{} {bio}", r.label),
        })
        .chain(std::iter::once("persistence".to_string()))
        .collect();
    let values: Vec<f64> = rows
        .iter()
        .map(|r| r.report.nrmse_median)
        .chain(std::iter::once(persistence))
        .collect();
    grouped_bars(
        &args.output.join("comparison.png"),
        "Thomas, one Lyapunov time ahead: median test NRMSE",
        "median NRMSE",
        &["Thomas".to_string()],
        &labels
            .iter()
            .zip(&values)
            .map(|(label, v)| Bars {
                label: label.clone(),
                values: vec![Some(*v)],
                errors: vec![0.0],
            })
            .collect::<Vec<_>>(),
    )?;
    println!("5/5 compared them on the test split (the last 10 % of the series):\n");
    print!("{table}");
    let (b, s) = (rows[0].report.nrmse_median, rows[1].report.nrmse_median);
    println!(
        "\nThe bio twin's median NRMSE is {:+.1} % against the baseline's: one seed and {} epochs, so read it as an example, not a result.",
        100.0 * (s - b) / b,
        args.epochs
    );
    let out = args.output.display();
    println!(
        "\nEverything is in {out}: comparison.md and comparison.png; {out}/gru, {out}/gru-bio and {out}/esn hold"
    );
    println!(
        "config.json, metrics.csv, report.json, nrmse.png, loss.png and forecast_1..3.png (forecast against truth)."
    );
    println!("\nNext:");
    println!(
        "  chaoscast train --data {out}/thomas.parquet --model lstm -o runs/lstm               # the full default recipe (about 5 minutes)"
    );
    println!(
        "  chaoscast compare examples/compare-quick.toml -o runs/compare-quick                # seeds and variants as a table"
    );
    println!(
        "  chaoscast predict {out}/gru --input history.csv --output forecast.csv              # forecast your own data"
    );
    Ok(())
}

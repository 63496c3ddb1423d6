//! `chaoscast demo`: the whole pipeline at a small size on the CPU — generate a Thomas dataset,
//! train a small LSTM and its bio twin on the same seed, evaluate both, compare.

use std::path::PathBuf;

use anyhow::{Context, Result};
use chaoscast::data::{RecipeSpec, generate, write_dataset};
use chaoscast::plots::{Bars, grouped_bars};
use chaoscast::progress::NoProgress;
use chaoscast::systems::SystemName;

use super::eval;
use super::train::{Settings, train_settings};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Writes into OUTPUT: thomas.parquet, baseline/ and bio/ (run folders with report.json\n\
    and plots), comparison.png and comparison.md. About 25 seconds on 2 cores."
)]
pub(crate) struct Args {
    /// Folder for everything the demo writes.
    #[arg(long, short, default_value = "runs/demo")]
    output: PathBuf,
    /// Samples of the Thomas series (the paper's recipe has 10,000).
    #[arg(long, default_value_t = 3000)]
    samples: usize,
    /// Training epochs of each model.
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    /// The bio twin's preset: paper-default (the default: the less harmful of the two in the
    /// comparison grid, see the README) or paper-tuned.
    #[arg(long, default_value = "paper-default", value_parser = ["paper-tuned", "paper-default"])]
    bio: String,
    /// Seed of both models.
    #[arg(long, default_value_t = 0)]
    seed: u64,
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
        "1/4 generated {} samples of the Thomas attractor (Δt = {}, horizon 41 steps = one Lyapunov time): {}",
        args.samples,
        recipe.dt,
        data.display()
    );

    let mut rows = Vec::new();
    for (step, (name, bio)) in [("baseline", "none"), ("bio", args.bio.as_str())]
        .into_iter()
        .enumerate()
    {
        let folder = args.output.join(name);
        let settings = Settings {
            data: Some(data.clone()),
            model: Some("lstm".into()),
            preset: Some("small".into()),
            epochs: Some(args.epochs),
            seed: Some(args.seed),
            bio: Some(bio.into()),
            output: Some(folder.clone()),
            ..Settings::default()
        };
        let summary = train_settings(&settings, None, true, quiet)?;
        let report = eval::evaluate_run(
            &eval::Args {
                run: folder.clone(),
                data: None,
                rollout: None,
            },
            true,
        )?;
        println!(
            "{}/4 trained the {name} LSTM ({}): {} epochs, best validation NRMSE {:.4}; test median NRMSE {:.4}",
            step + 2,
            if bio == "none" {
                "no bio mechanisms".to_string()
            } else {
                format!("bio preset {bio}")
            },
            summary.epochs,
            summary.best_nrmse,
            report.nrmse_median
        );
        rows.push((name, bio, report, summary));
    }

    let persistence = rows[0].2.persistence_nrmse();
    let mut table = String::from(
        "| model | bio | epochs | median NRMSE | mean NRMSE | median VPT (steps) |\n| --- | --- | --- | --- | --- | --- |\n",
    );
    for (name, bio, r, s) in &rows {
        table.push_str(&format!(
            "| LSTM {name} | {bio} | {} | {:.4} | {:.4} | {} |\n",
            s.epochs, r.nrmse_median, r.nrmse_mean, r.vpt_median_steps
        ));
    }
    table.push_str(&format!(
        "| persistence (last value repeated) | — | — | {persistence:.4} | — | — |\n"
    ));
    chaoscast::run::write_atomic(&args.output.join("comparison.md"), table.as_bytes())?;
    grouped_bars(
        &args.output.join("comparison.png"),
        "Thomas, one Lyapunov time ahead: median test NRMSE",
        "median NRMSE",
        &["LSTM".to_string()],
        &rows
            .iter()
            .map(|(name, _, r, _)| Bars {
                label: name.to_string(),
                values: vec![r.nrmse_median],
                errors: vec![0.0],
            })
            .chain(std::iter::once(Bars {
                label: "persistence".into(),
                values: vec![persistence],
                errors: vec![0.0],
            }))
            .collect::<Vec<_>>(),
    )?;
    println!("4/4 compared them on the test split (the last 10 % of the series):\n");
    print!("{table}");
    let (b, s) = (rows[0].2.nrmse_median, rows[1].2.nrmse_median);
    println!(
        "\nThe bio twin's median NRMSE is {:+.1} % against the baseline's: one seed and {} epochs, so read it as an example, not a result.",
        100.0 * (s - b) / b,
        args.epochs
    );
    let out = args.output.display();
    println!(
        "\nEverything is in {out}: comparison.md and comparison.png; {out}/baseline and {out}/bio hold"
    );
    println!("config.json, metrics.csv, report.json, nrmse.png, loss.png and forecast_1..3.png.");
    println!("\nNext:");
    println!(
        "  chaoscast train --data {out}/thomas.parquet --model gru --bio paper-default -o runs/gru   # another model and preset"
    );
    println!(
        "  chaoscast compare examples/compare-quick.toml -o runs/compare-quick                    # seeds and variants as a table"
    );
    println!(
        "  chaoscast predict {out}/bio --input history.csv --output forecast.csv                   # forecast your own data"
    );
    Ok(())
}

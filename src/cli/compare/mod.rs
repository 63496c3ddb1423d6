//! `chaoscast compare`: train and evaluate every cell of an experiment (datasets × models × bio
//! variants × seeds) one after another, then write the summary table and a bar plot. Each cell is
//! a run folder; an interrupted compare resumes where it stopped.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chaoscast::compare::{
    CellClimate, CellResult, bar_series, cells_csv, csv, markdown, summarise,
};
use chaoscast::plots::grouped_bars;
use chaoscast::run::{RunConfig, checkpoint_path, load_metrics, write_atomic};

use super::eval;
use super::train::{Settings, best_epoch, resume_settings, train_settings};

mod claim;
mod plan;

use claim::{Claim, cell_state};
use plan::{Experiment, Variant, expand, plan_cells, settings_of};

#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  \
    chaoscast generate datasets/thomas.toml -o thomas.parquet\n  \
    chaoscast compare examples/compare-thomas.toml --output runs/compare\n\n\
    The experiment file (TOML) names datasets, models, seeds, a [train] table of settings every\n\
    cell shares (the keys of `train --config`), and [[variants]], each a name plus settings (e.g.\n\
    bio = \"paper-tuned\", bio-scope = \"reference\"); the first variant is the baseline. ESN cells of\n\
    variants with a bio mechanism are skipped, and so are cells of an autoregressive variant (decoder =\n\
    \"autoregressive\") for the esn; the ESN's settings (leak, esn-search, ...)\n\
    apply to the ESN only, and the strategy settings to autoregressive cells only. A variant key\n\
    given a list (fl-spread = [0.05, 0.09], wr-distance = [14, 30]) makes a grid: one variant per\n\
    combination, named NAME+fl-spread=0.05+wr-distance=14. Cells go to\n\
    OUTPUT/cells/DATASET/MODEL/VARIANT/seed-N-KEY, KEY a hash of everything that defines the cell\n\
    (its resolved training config, variables, device and the dataset's bytes, written out in\n\
    cell.json), so a changed setting is a new cell; finished cells are kept and a half-trained one\n\
    resumes from its checkpoint. OUTPUT gets cells.csv, summary.md, summary.csv and one\n\
    nrmse-DATASET.png per dataset. climate = true (top level) judges every cell's climate as\n\
    `eval --climate` does and adds its numbers to the tables (finished cells are evaluated again).")]
pub(crate) struct Args {
    /// The experiment file.
    experiment: PathBuf,
    /// Folder for the cells and the tables.
    #[arg(long, short)]
    output: PathBuf,
    /// Print the cell count and a table (index, dataset, model, variant, seed, state) and stop:
    /// what a job array is sized by.
    #[arg(long, conflicts_with_all = ["shard", "summarise", "no_summary"])]
    list_cells: bool,
    /// Run only the cells whose index mod N is I (e.g. 3/10 for array task 3 of 10); writes
    /// no summary.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    shard: Option<(usize, usize)>,
    /// Train without writing the tables.
    #[arg(long)]
    no_summary: bool,
    /// Train nothing: write the tables from the finished cells (an error if any is not).
    #[arg(long, conflicts_with_all = ["shard", "no_summary"])]
    summarise: bool,
}

/// `I/N` with I < N.
fn parse_shard(text: &str) -> std::result::Result<(usize, usize), String> {
    let (i, n) = text
        .split_once('/')
        .ok_or_else(|| format!("'{text}' is not I/N (e.g. 3/10)"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|_| format!("'{text}' is not I/N with whole numbers"))
    };
    let (i, n) = (parse(i)?, parse(n)?);
    if n == 0 || i >= n {
        return Err(format!("shard {i}/{n}: I must be below N, N at least 1"));
    }
    Ok((i, n))
}

pub(crate) fn run(args: Args, quiet: bool) -> Result<()> {
    let text = std::fs::read_to_string(&args.experiment)
        .with_context(|| format!("cannot read {}", args.experiment.display()))?;
    let exp: Experiment = toml::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "cannot use {}: {}",
            args.experiment.display(),
            e.message().trim_end_matches('.')
        )
    })?;
    if exp.datasets.is_empty()
        || exp.models.is_empty()
        || exp.seeds.is_empty()
        || exp.variants.is_empty()
    {
        bail!(
            "{} needs at least one dataset, model, seed and variant",
            args.experiment.display()
        );
    }
    let shared = settings_of(&exp.train, "the [train] table")?;
    for (flag, set) in [
        ("data", shared.data.is_some()),
        ("model", shared.model.is_some()),
        ("seed", shared.seed.is_some()),
        ("output", shared.output.is_some()),
    ] {
        if set {
            bail!("the [train] table cannot set {flag}: the experiment chooses it per cell");
        }
    }
    let mut variants: Vec<Variant> = Vec::new();
    for table in &exp.variants {
        let mut table = table.clone();
        let Some(toml::Value::String(name)) = table.remove("name") else {
            bail!("every [[variants]] entry needs a name");
        };
        for (name, table) in expand(&name, &table)? {
            if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
                bail!(
                    "variant name '{name}' cannot name a folder (empty, a path separator, or a leading dot)"
                );
            }
            if variants.iter().any(|v| v.name == name) {
                bail!("two variants are named '{name}': each needs a name of its own");
            }
            let settings = settings_of(&table, &format!("variant '{name}'"))?;
            variants.push(Variant { name, settings });
        }
    }
    for (i, d) in exp.datasets.iter().enumerate() {
        if !d.is_file() {
            bail!("dataset {} does not exist (generate it first)", d.display());
        }
        // Cells and summary rows are named by the file's stem.
        if let Some(other) = exp.datasets[..i]
            .iter()
            .find(|o| o.file_stem() == d.file_stem())
        {
            bail!(
                "datasets {} and {} have the same name, which names their cells and summary rows; rename one",
                other.display(),
                d.display()
            );
        }
    }
    let plan = plan_cells(&exp, &variants, &shared, &args.output)?;
    let total = plan.len();
    if args.list_cells {
        println!("{total} cells");
        println!("index\tdataset\tmodel\tvariant\tseed\tstate");
        for c in &plan {
            let state = match (&c.settings, &c.folder) {
                (Err(why), _) => format!("skipped ({why})"),
                (Ok(_), Some(folder)) => cell_state(folder).to_string(),
                (Ok(_), None) => unreachable!("a planned cell has a folder"),
            };
            println!(
                "{}\t{}\t{}\t{}\t{}\t{state}",
                c.index, c.dataset, c.model, c.variant, c.seed
            );
        }
        return Ok(());
    }
    let (shard, shards) = args.shard.unwrap_or((0, 1));
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    let mut done = Vec::with_capacity(total);
    let mut missing = Vec::new();
    for c in &plan {
        let k = c.index + 1;
        let label = format!("{} {} {} seed {}", c.dataset, c.model, c.variant, c.seed);
        let settings = match &c.settings {
            Ok(settings) => settings,
            Err(why) => {
                if !quiet && !args.summarise {
                    eprintln!("cell {k}/{total}: {label}: skipped ({why})");
                }
                continue;
            }
        };
        let folder = c.folder.as_ref().expect("a planned cell has a folder");
        let state = if args.summarise {
            if cell_state(folder) != "finished" {
                missing.push(label);
                continue;
            }
            read_cell(folder)?
        } else if c.index % shards != shard {
            continue;
        } else {
            // Another worker may hold the cell; it is then left to that worker.
            let Some(_claim) = Claim::take(folder)? else {
                if !quiet {
                    eprintln!("cell {k}/{total}: {label}: claimed by another worker, left to it");
                }
                missing.push(label);
                continue;
            };
            let state = cell(folder, settings, &label, k, total, exp.climate, quiet)?;
            let stored = folder.join("cell.json");
            if !stored.is_file() {
                write_atomic(&stored, c.definition.as_bytes())?;
            }
            state
        };
        done.push(CellResult {
            dataset: c.dataset.clone(),
            model: c.model.to_string(),
            variant: c.variant.clone(),
            seed: c.seed,
            ..state
        });
    }
    if args.summarise && !missing.is_empty() {
        bail!(
            "{} of the cells are not finished (the first: {}); run their shards first",
            missing.len(),
            missing[0]
        );
    }
    if args.no_summary || shards > 1 {
        println!(
            "{} cells finished by this worker{}; `chaoscast compare EXPERIMENT --summarise -o {}` writes the tables once every shard is done",
            done.len(),
            if missing.is_empty() {
                String::new()
            } else {
                format!(", {} claimed by others", missing.len())
            },
            args.output.display()
        );
        return Ok(());
    }
    if !missing.is_empty() {
        eprintln!(
            "warning: {} cells are held by other workers and left out of these tables (the first: {}); \
             run `compare --summarise` once they finish",
            missing.len(),
            missing[0]
        );
    }
    write_tables(
        &args.output,
        &done,
        &variants[0].name,
        &exp.models.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
        &variants,
    )?;
    println!(
        "{} cells; wrote {}/summary.md, summary.csv, cells.csv and the bar plots",
        done.len(),
        args.output.display()
    );
    print!(
        "{}",
        markdown(&summarise(&done, &variants[0].name), &variants[0].name)
    );
    Ok(())
}
/// Runs (or resumes, or reads back) one cell and returns its numbers.
fn cell(
    folder: &Path,
    settings: &Settings,
    label: &str,
    k: usize,
    total: usize,
    climate: bool,
    quiet: bool,
) -> Result<CellResult> {
    let report = folder.join("report.json");
    let eval_args = eval::Args {
        run: folder.to_path_buf(),
        data: None,
        rollout: None,
        climate,
        steps: None,
        starts: None,
        ensemble: None,
        perturb: None,
    };
    let diverged = folder.join("diverged.txt");
    if cell_state(folder) != "finished" {
        let trained = if checkpoint_path(folder).is_file() {
            if !quiet {
                eprintln!("cell {k}/{total}: {label}: resuming");
            }
            let flags = Settings {
                epochs: settings.epochs,
                ..Settings::default()
            };
            resume_settings(folder, &flags, quiet).map(|_| ())
        } else {
            if !quiet {
                eprintln!("cell {k}/{total}: {label}: training");
            }
            train_settings(settings, None, true, quiet).map(|_| ())
        };
        match trained {
            Ok(()) => {}
            // Trained to the end before an interruption stopped the cell short of its report.
            Err(e) if matches!(e.downcast_ref(), Some(chaoscast::Error::NothingToResume(_))) => {}
            // A diverged cell is a result of the experiment, not a failure of it: it is marked,
            // its best checkpoint (if it finished an epoch) is scored, and the grid goes on.
            Err(e) if matches!(e.downcast_ref(), Some(chaoscast::Error::NonFinite { .. })) => {
                write_atomic(&diverged, format!("{e}\n").as_bytes())?;
                if !quiet {
                    eprintln!("cell {k}/{total}: {label}: diverged ({e})");
                }
            }
            Err(e) => return Err(e.context(format!("cell {label}"))),
        }
        if !diverged.is_file() || folder.join("model.mpk").is_file() {
            eval::evaluate_run(&eval_args, true).with_context(|| format!("cell {label}"))?;
        }
    } else {
        if !quiet {
            eprintln!("cell {k}/{total}: {label}: done earlier");
        }
        // A finished cell not yet judged on its climate is evaluated again, with it.
        let judged = std::fs::read_to_string(&report)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|j| j.get("climate").is_some());
        if climate && !judged && folder.join("model.mpk").is_file() {
            eval::evaluate_run(&eval_args, true).with_context(|| format!("cell {label}"))?;
        }
    }
    let result = read_cell(folder)?;
    if !quiet {
        eprintln!(
            "cell {k}/{total}: {label}: median NRMSE {:.4}, best epoch {}, {:.0} s",
            result.nrmse_median, result.best_epoch, result.seconds
        );
    }
    Ok(result)
}

/// The numbers of a finished cell, read from its folder.
fn read_cell(folder: &Path) -> Result<CellResult> {
    let report = folder.join("report.json");
    let diverged = folder.join("diverged.txt");
    // A cell that diverged before its first epoch ended has no model to score: infinite NRMSE.
    let json: serde_json::Value = if report.is_file() {
        let text = std::fs::read_to_string(&report)?;
        serde_json::from_str(&text).with_context(|| format!("cannot read {}", report.display()))?
    } else {
        serde_json::Value::Null
    };
    // A diverged forecast's NRMSE is infinite, which JSON writes as null.
    let num = |key: &str| json[key].as_f64().unwrap_or(f64::INFINITY);
    let history = if diverged.is_file() && !folder.join("metrics.csv").is_file() {
        Vec::new()
    } else {
        load_metrics(folder)?
    };
    let config = RunConfig::load(folder)?;
    let best_epoch = best_epoch(&history);
    let result = CellResult {
        dataset: String::new(),
        model: config.train.model.name().into(),
        variant: String::new(),
        seed: config.train.seed,
        nrmse_median: num("nrmse_median"),
        nrmse_mean: num("nrmse_mean"),
        vpt_median_steps: num("vpt_median_steps"),
        best_epoch,
        epochs: history.len(),
        diverged: diverged.is_file(),
        val_auc: if history.is_empty() {
            f64::INFINITY
        } else {
            history.iter().map(|m| m.val_nrmse).sum()
        },
        seconds: history.iter().map(|m| m.seconds).sum(),
        climate: json.get("climate").map(|c| CellClimate {
            lyapunov: c["lyapunov_median"].as_f64(),
            wasserstein: c["wasserstein_median"].as_f64(),
            spectrum_decades: c["spectrum_decades_median"].as_f64(),
            on_attractor: c["on_attractor"].as_u64().unwrap_or(0) as usize,
            collapsed: c["collapsed"].as_u64().unwrap_or(0) as usize,
            diverged: c["diverged"].as_u64().unwrap_or(0) as usize,
        }),
    };
    Ok(result)
}

fn write_tables(
    out: &Path,
    cells: &[CellResult],
    baseline: &str,
    models: &[String],
    variants: &[Variant],
) -> Result<()> {
    write_atomic(&out.join("cells.csv"), cells_csv(cells).as_bytes())?;
    let rows = summarise(cells, baseline);
    write_atomic(
        &out.join("summary.md"),
        markdown(&rows, baseline).as_bytes(),
    )?;
    write_atomic(&out.join("summary.csv"), csv(&rows).as_bytes())?;
    let mut datasets: Vec<&str> = Vec::new();
    for r in &rows {
        if !datasets.contains(&r.dataset.as_str()) {
            datasets.push(&r.dataset);
        }
    }
    for dataset in datasets {
        let names: Vec<String> = variants.iter().map(|v| v.name.clone()).collect();
        let series = bar_series(&rows, dataset, models, &names);
        grouped_bars(
            &out.join(format!("nrmse-{dataset}.png")),
            &format!("{dataset}: median test NRMSE, mean ± std over seeds"),
            "median NRMSE",
            models,
            &series,
        )?;
    }
    Ok(())
}

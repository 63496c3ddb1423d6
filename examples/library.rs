//! The whole pipeline from Rust, without the command-line tool: generate a Thomas series, train
//! a GRU into a run folder (the folder `chaoscast train` writes), evaluate it as `chaoscast eval`
//! does, and forecast with the folder loaded back. Builds with the library alone:
//!
//! ```sh
//! cargo run --release --no-default-features --example library -- runs/library
//! ```
//!
//! A few seconds on 2 cores (a small GRU, 15 epochs: an example of the calls, not a good
//! forecaster). Its metrics.csv is the one `chaoscast train --data FOLDER/thomas.parquet --model gru
//! --hidden 32 --epochs 15 --patience 15` writes, times aside (the test
//! `a_library_run_folder_is_the_one_train_writes` holds the two paths to the same bits).

use burn::backend::{Autodiff, Flex};
use chaoscast::data::window::DEFAULT_LOOKBACK;
use chaoscast::eval::{EvalOptions, evaluate_run};
use chaoscast::models::{ModelConfig, ModelKind, Preset};
use chaoscast::prelude::*;
use chaoscast::run::{RunConfig, RunFolder};
use chaoscast::train::state::Silent;
use chaoscast::train::trainer::{TrainConfig, train};

fn main() -> chaoscast::Result<()> {
    let folder = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "runs/library".into());
    let folder = std::path::PathBuf::from(folder);
    std::fs::create_dir_all(&folder).map_err(|e| Error::io("create", &folder, e))?;

    // The paper's Thomas series, 4,000 samples, stored beside the run (the run records its path).
    let mut spec = RecipeSpec::for_system(SystemName::Thomas);
    spec.samples = Some(4000);
    let recipe = spec.resolve()?;
    let data = generate(&recipe, &NoProgress)?;
    let data_path = folder.join("thomas.parquet");
    write_dataset(&data, &data_path, Format::Parquet, true)?;

    // The default recipe of `chaoscast train --model gru`, smaller and shorter.
    let horizon = data.meta.horizon(None)?;
    let mut cfg = TrainConfig::preset_for(
        ModelKind::Gru,
        Preset::Default,
        None,
        data.vars(),
        DEFAULT_LOOKBACK,
        horizon,
    )?;
    if let ModelConfig::Recurrent(c) = &mut cfg.model {
        c.hidden = 32;
    }
    cfg.epochs = 15;
    cfg.patience = 15;

    // RunFolder writes config.json now, and the best model, metrics.csv and the checkpoint after
    // every epoch; Silent stands where the CLI shows its progress bar.
    let run = folder.join("gru");
    let run_config = RunConfig::new(cfg.clone(), &data_path, &data)?;
    let mut observer = RunFolder::create(&run, &run_config, Silent)?;
    let device = Default::default();
    let outcome = train::<Autodiff<Flex>>(&cfg, &data, &device, &mut observer)?;
    println!(
        "trained {} epochs, best validation NRMSE {:.4} at epoch {}; run folder {}",
        outcome.history.len(),
        outcome.history[outcome.best_epoch - 1].val_nrmse,
        outcome.best_epoch,
        run.display()
    );

    // What `chaoscast eval` reports (report.json and nrmse_steps.csv in the folder).
    let report = evaluate_run(&run, &EvalOptions::default(), &|line| eprintln!("{line}"))?;
    println!(
        "test median NRMSE {:.4} (persistence {:.4}), median VPT {} steps",
        report.nrmse_median,
        report.persistence_nrmse(),
        report.vpt_median_steps
    );

    // The folder loaded back, as an application would.
    let forecaster = Forecaster::load(&run)?;
    let last = data.len() - forecaster.lookback();
    let history: Vec<Vec<f32>> = (last..data.len())
        .map(|i| data.row(i).iter().map(|v| *v as f32).collect())
        .collect();
    let next = forecaster.predict(&history)?;
    println!(
        "next {} rows after the series, first: {:?}",
        next.len(),
        next[0]
    );
    Ok(())
}

//! The embedding API (issue 15): `Forecaster` shared across threads, batched, with typed errors,
//! built from a run folder or from a model trained in memory.

use burn::backend::{Autodiff, Flex};
use burn::module::AutodiffModule;
use chaoscast::forecaster::{ForecastError, Forecaster};
use chaoscast::prelude::*;

use crate::cli::{dataset, small_train, text};

fn assert_send_sync<T: Send + Sync>() {}

/// One forecaster can serve many threads.
#[test]
fn a_forecaster_is_send_and_sync() {
    assert_send_sync::<Forecaster>();
    assert_send_sync::<Forecaster<Flex>>();
}

/// The rows `start..start + len` of the dataset file `path` as `f32` rows.
fn rows(path: &std::path::Path, start: usize, len: usize) -> Vec<Vec<f32>> {
    let data = read_dataset(path).unwrap();
    (start..start + len)
        .map(|i| data.row(i).iter().map(|v| *v as f32).collect())
        .collect()
}

/// A batch of histories gives, in order, what one forecast at a time gives; rollouts likewise;
/// and the forecaster built from the stored weights of a run trained with weight splitting
/// (`from_trained`, as a program that trained in memory would) forecasts what the loaded run
/// forecasts, its trained function.
#[test]
fn batches_rollouts_and_models_from_memory_agree() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 500 --horizon 5 -o t.parquet");
    let out = small_train(d, 1, &["--model", "gru", "--ws-groups", "2", "-o", "run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let run = d.join("run");
    let f = Forecaster::load(&run).unwrap();
    assert_eq!((f.lookback(), f.horizon(), f.vars()), (20, 5, 3));
    // Histories of different lengths: the model reads the last 20 rows of each.
    let histories = [
        rows(&d.join("t.parquet"), 0, 20),
        rows(&d.join("t.parquet"), 100, 35),
        rows(&d.join("t.parquet"), 300, 20),
    ];
    let batch = f.predict_batch(&histories).unwrap();
    assert_eq!(batch.len(), 3);
    for (h, b) in histories.iter().zip(&batch) {
        let one = f.predict(h).unwrap();
        assert_eq!(one.len(), 5);
        for (x, y) in one.iter().flatten().zip(b.iter().flatten()) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
        }
    }
    assert_ne!(batch[0], batch[1]);
    let long = f.rollout_batch(&histories, 12).unwrap();
    for (h, l) in histories.iter().zip(&long) {
        assert_eq!(l.len(), 12);
        let one = f.rollout(h, 12).unwrap();
        for (x, y) in one.iter().flatten().zip(l.iter().flatten()) {
            assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{x} vs {y}");
        }
    }
    assert!(
        f.predict_batch::<Vec<Vec<f32>>, Vec<f32>>(&[])
            .unwrap()
            .is_empty()
    );

    let cfg = chaoscast::run::RunConfig::load(&run).unwrap();
    let device = Default::default();
    let stored = chaoscast::run::load_weights::<Flex>(&cfg, &run, &device).unwrap();
    let memory = Forecaster::from_trained(stored, cfg, &device).unwrap();
    assert_eq!(
        memory.predict(&histories[1]).unwrap(),
        f.predict(&histories[1]).unwrap()
    );
}

/// Each kind of bad history is its own error variant, with the numbers an application needs.
#[test]
fn bad_histories_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 500 --horizon 5 -o t.parquet");
    let out = small_train(d, 1, &["--model", "lstm", "-o", "run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let f = Forecaster::load(d.join("run")).unwrap();
    let good = rows(&d.join("t.parquet"), 0, 24);
    assert_eq!(
        f.predict(&good[..7]),
        Err(ForecastError::HistoryTooShort { needed: 20, got: 7 })
    );
    let mut wide = good.clone();
    wide[10].push(1.0);
    assert!(matches!(
        f.predict(&wide),
        Err(ForecastError::WrongColumns {
            row: 11,
            expected: 3,
            got: 4,
            ..
        })
    ));
    // A bad row before the last 20 is never read.
    let mut early = good.clone();
    early[2][0] = f32::NAN;
    assert!(f.predict(&early).is_ok());
    let mut late = good.clone();
    late[22][2] = f32::INFINITY;
    assert_eq!(
        f.rollout(&late, 3),
        Err(ForecastError::NonFinite {
            row: 23,
            column: "z".into()
        })
    );
    let err: chaoscast::Error = f.predict(&good[..1]).unwrap_err().into();
    assert!(
        err.to_string().contains("the model reads the last 20"),
        "{err}"
    );
}

/// A program trains in memory with the library and forecasts with the result, no run folder in
/// between.
#[test]
fn a_model_trained_in_memory_forecasts() {
    use chaoscast::models::{CellKind, ModelConfig, RecurrentConfig};
    use chaoscast::train::trainer::{Silent, TrainConfig, train};

    let mut spec = RecipeSpec::for_system(SystemName::Thomas);
    spec.samples = Some(600);
    let data = generate(&spec.resolve().unwrap(), &NoProgress).unwrap();
    let model = ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Gru, 3, 4).with_hidden(8));
    let mut cfg = TrainConfig::new(model);
    cfg.lookback = 16;
    cfg.batch_size = 64;
    cfg.epochs = 1;
    let device = Default::default();
    let outcome = train::<Autodiff<Flex>>(&cfg, &data, &device, &mut Silent).unwrap();
    let run = chaoscast::run::RunConfig::new(cfg, "in-memory.parquet", &data).unwrap();
    let f = Forecaster::from_trained(outcome.best.valid(), run, &device).unwrap();
    let history: Vec<[f32; 3]> = (0..16)
        .map(|i| {
            let r = data.row(100 + i);
            [r[0] as f32, r[1] as f32, r[2] as f32]
        })
        .collect();
    let next = f.predict(&history).unwrap();
    assert_eq!((next.len(), next[0].len()), (4, 3));
    assert!(next.iter().flatten().all(|v| v.is_finite()));
}

/// An ensemble of identical members (no perturbation) has zero spread and the plain rollout as
/// its mean; perturbed, member 0 stays the plain rollout and the spread grows from zero. From the
/// command line, `predict --ensemble` writes the mean, the spread and the members, and `eval
/// --ensemble` scores the mean and the spread against the error.
#[test]
fn ensembles_have_a_mean_a_spread_and_members() {
    use crate::cli::chaoscast;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 500 --horizon 5 -o t.parquet");
    let out = small_train(d, 1, &["--model", "gru", "-o", "run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let f = Forecaster::load(d.join("run")).unwrap();
    let history = rows(&d.join("t.parquet"), 50, 20);
    let plain = f.rollout(&history, 8).unwrap();
    let same = f.ensemble(&history, 4, 0.0, 8, 0).unwrap();
    assert_eq!(same.members.len(), 4);
    assert!(same.spread.iter().flatten().all(|s| *s == 0.0));
    for (m, p) in same.mean.iter().flatten().zip(plain.iter().flatten()) {
        assert!((m - p).abs() <= 1e-5 * (1.0 + p.abs()), "{m} vs {p}");
    }
    let wide = f.ensemble(&history, 4, 0.1, 8, 0).unwrap();
    assert_eq!(wide.members[0], plain);
    assert!(wide.spread.iter().flatten().all(|s| *s > 0.0));
    assert_eq!(wide, f.ensemble(&history, 4, 0.1, 8, 0).unwrap(), "seeded");

    std::fs::write(
        d.join("in.csv"),
        std::iter::once("x,y,z".to_string())
            .chain(
                history
                    .iter()
                    .map(|r| format!("{},{},{}", r[0], r[1], r[2])),
            )
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let out = chaoscast(
        d,
        &[
            "predict",
            "run",
            "-i",
            "in.csv",
            "-o",
            "ens.csv",
            "--steps",
            "8",
            "--ensemble",
            "3",
            "--perturb",
            "0.1",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = std::fs::read_to_string(d.join("ens.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    assert_eq!(
        header,
        "x,y,z,x_spread,y_spread,z_spread,x_m0,y_m0,z_m0,x_m1,y_m1,z_m1,x_m2,y_m2,z_m2"
    );
    assert_eq!(csv.lines().count(), 1 + 8);
    let out = chaoscast(d, &["eval", "run", "--ensemble", "3", "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/report.json")).unwrap()).unwrap();
    let e = &report["ensemble"];
    assert_eq!(e["members"], 3);
    assert!(e["spread_error_ratio"].as_f64().unwrap() > 0.0);
    assert!(e["spread_error_correlation"].as_f64().unwrap().abs() <= 1.0);
    assert!(e["nrmse_median"].as_f64().unwrap() > 0.0);
}

/// A program that trains into a `RunFolder` and scores it with `eval::evaluate_run` gets the run
/// folder and the report `chaoscast train` and `chaoscast eval` write for the same config:
/// the same metrics (times aside), the same scores, the same forecasts (model.mpk itself holds
/// random parameter ids, so its bytes differ from process to process); and a folder that
/// already holds a run is refused.
#[test]
fn a_library_run_folder_is_the_one_train_writes() {
    use chaoscast::eval::{EvalOptions, evaluate_run};
    use chaoscast::run::{RunConfig, RunFolder};
    use chaoscast::train::trainer::{Silent, train};

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 500 --horizon 5 -o t.parquet");
    let out = small_train(d, 2, &["--model", "gru", "-o", "cli"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = crate::cli::chaoscast(d, &["eval", "cli", "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let cfg = RunConfig::load(&d.join("cli")).unwrap().train;
    let data = read_dataset(&d.join("t.parquet")).unwrap();
    let run_config = RunConfig::new(cfg.clone(), d.join("t.parquet"), &data).unwrap();
    let mut folder = RunFolder::create(d.join("lib"), &run_config, Silent).unwrap();
    let device = Default::default();
    let outcome = train::<Autodiff<Flex>>(&cfg, &data, &device, &mut folder).unwrap();
    assert_eq!(outcome.history.len(), 2);
    let report = evaluate_run(&d.join("lib"), &EvalOptions::default(), &|_| {}).unwrap();

    let without_seconds = |run: &str| -> Vec<String> {
        let text = std::fs::read_to_string(d.join(run).join("metrics.csv")).unwrap();
        text.lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                [&f[..5], &f[6..]].concat().join(",")
            })
            .collect()
    };
    assert_eq!(without_seconds("lib"), without_seconds("cli"));
    let bytes = |run: &str, file: &str| std::fs::read(d.join(run).join(file)).unwrap();
    assert_eq!(
        bytes("lib", "nrmse_steps.csv"),
        bytes("cli", "nrmse_steps.csv")
    );
    let cli: serde_json::Value = serde_json::from_slice(&bytes("cli", "report.json")).unwrap();
    assert_eq!(cli["nrmse_median"].as_f64(), Some(report.nrmse_median));
    assert_eq!(
        cli["rollout_steps"].as_u64(),
        Some(report.rollout_steps as u64)
    );
    assert!(d.join("lib").join("checkpoint.bin").is_file());

    let history = rows(&d.join("t.parquet"), 50, 20);
    let a = Forecaster::load(d.join("lib"))
        .unwrap()
        .predict(&history)
        .unwrap();
    let b = Forecaster::load(d.join("cli"))
        .unwrap()
        .predict(&history)
        .unwrap();
    assert_eq!(a, b);

    let err = RunFolder::create(d.join("lib"), &run_config, Silent)
        .err()
        .expect("a folder holding a run is refused");
    assert!(err.to_string().contains("is not an empty folder"), "{err}");
}

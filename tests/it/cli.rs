//! The real binary in a temporary folder: generate, info, lyapunov, and every bad input.

use std::path::Path;

use crate::files_in;
use std::process::{Command, Output};

pub(crate) fn chaoscast(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chaoscast"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the chaoscast binary should run")
}

/// `chaoscast generate ARGS -q` in `dir` (ARGS split at spaces), which must succeed.
pub(crate) fn dataset(dir: &Path, args: &str) {
    let mut all = vec!["generate"];
    all.extend(args.split(' '));
    all.push("-q");
    let out = chaoscast(dir, &all);
    assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `chaoscast train --data t.parquet --lookback 20 --hidden 8 --epochs EPOCHS -q EXTRA` in `dir`.
pub(crate) fn small_train(dir: &Path, epochs: usize, extra: &[&str]) -> Output {
    let epochs = epochs.to_string();
    let mut args = vec![
        "train",
        "--data",
        "t.parquet",
        "--lookback",
        "20",
        "--hidden",
        "8",
        "--epochs",
        &epochs,
        "-q",
    ];
    args.extend(extra);
    chaoscast(dir, &args)
}

/// The cell folders of seed `seed` under `variant` (`cmp/cells/DATASET/MODEL/VARIANT`), which
/// `compare` names `seed-N-KEY`.
fn cells_of(variant: &Path, seed: u64) -> Vec<std::path::PathBuf> {
    let prefix = format!("seed-{seed}-");
    let mut found: Vec<_> = std::fs::read_dir(variant)
        .unwrap_or_else(|e| panic!("{}: {e}", variant.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    found.sort();
    found
}

/// The one cell folder of seed `seed` under `variant`.
fn cell_of(variant: &Path, seed: u64) -> std::path::PathBuf {
    let found = cells_of(variant, seed);
    assert_eq!(found.len(), 1, "{found:?}");
    found[0].clone()
}

#[test]
fn generate_then_info() {
    let dir = tempfile::tempdir().unwrap();
    let out = chaoscast(
        dir.path(),
        &[
            "generate",
            "thomas",
            "--samples",
            "300",
            "--transient",
            "10",
            "-o",
            "th.parquet",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("wrote 300 samples of thomas"));
    let info = chaoscast(dir.path(), &["info", "th.parquet"]);
    assert!(info.status.success(), "{}", text(&info.stderr));
    let shown = text(&info.stdout);
    assert!(
        shown.contains("system:      thomas (a = 1.85, b = 10)"),
        "{shown}"
    );
    assert!(shown.contains("samples:     300 at dt = 0.0497"), "{shown}");
    assert!(shown.lines().any(|l| l.starts_with("x ")), "{shown}");

    // CSV with a sidecar, parameters and the exponent from flags.
    let out = chaoscast(
        dir.path(),
        &[
            "generate",
            "lorenz63",
            "--samples",
            "50",
            "--param",
            "rho=30",
            "--format",
            "csv",
            "--lyapunov",
            "-o",
            "l63.csv",
            "--quiet",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).is_empty(),
        "--quiet printed {}",
        text(&out.stderr)
    );
    assert_eq!(
        files_in(dir.path()),
        vec!["l63.csv", "l63.json", "th.parquet"]
    );
    let info = text(&chaoscast(dir.path(), &["info", "l63.csv"]).stdout);
    assert!(
        info.contains("rho = 30") && info.contains("measured over 3 seeds"),
        "{info}"
    );
}

#[test]
fn generate_from_a_recipe_file_with_overrides() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("r.toml"),
        "system = \"lorenz96\"\nsamples = 20\ntransient = 1.0\nhorizon = 5\n[params]\nN = 8\nF = 10\n",
    )
    .unwrap();
    let out = chaoscast(
        dir.path(),
        &["generate", "r.toml", "--param", "F=12", "-o", "r.parquet"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let info = text(&chaoscast(dir.path(), &["info", "r.parquet"]).stdout);
    assert!(info.contains("F = 12") && info.contains("N = 8"), "{info}");
    assert!(info.contains("horizon:     5 steps"), "{info}");
    assert!(info.contains("X07"), "{info}");
}

#[test]
fn lyapunov_prints_estimate_and_spread() {
    let dir = tempfile::tempdir().unwrap();
    let out = chaoscast(
        dir.path(),
        &["lyapunov", "lorenz63", "--duration", "200", "--seeds", "2"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        shown.contains("lorenz63: largest Lyapunov exponent 0."),
        "{shown}"
    );
    assert!(shown.contains("2 seeds"), "{shown}");
}

#[test]
fn bad_input_gives_one_line_and_no_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("taken.parquet"), b"keep").unwrap();
    std::fs::write(
        dir.path().join("broken.toml"),
        "system = \"thomas\"\nsamples = \"many\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("a-file"), b"").unwrap();
    let before = files_in(dir.path());
    let cases: [(&[&str], &str); 12] = [
        (
            &["generate", "henon", "-o", "x.parquet"],
            "unknown system 'henon'",
        ),
        (
            &["generate", "thomas", "--dt", "0", "-o", "x.parquet"],
            "invalid dt",
        ),
        (
            &["generate", "thomas", "--dt", "-0.1", "-o", "x.parquet"],
            "invalid dt",
        ),
        (
            &["generate", "thomas", "--param", "a=nan", "-o", "x.parquet"],
            "invalid parameter a",
        ),
        (
            &[
                "generate",
                "lorenz96",
                "--param",
                "F=inf",
                "-o",
                "x.parquet",
            ],
            "invalid parameter F",
        ),
        (
            &["generate", "lorenz96", "--param", "G=1", "-o", "x.parquet"],
            "no parameter 'G'",
        ),
        (
            &["generate", "thomas", "--samples", "0", "-o", "x.parquet"],
            "invalid samples",
        ),
        (
            &[
                "generate",
                "thomas",
                "--samples",
                "5",
                "-o",
                "taken.parquet",
            ],
            "already exists",
        ),
        (
            &["generate", "thomas", "--samples", "5", "-o", "no/x.parquet"],
            "does not exist",
        ),
        (
            &[
                "generate",
                "thomas",
                "--samples",
                "5",
                "-o",
                "a-file/x.parquet",
            ],
            "is not a folder",
        ),
        (
            &["generate", "missing.toml", "-o", "x.parquet"],
            "cannot read missing.toml",
        ),
        (
            &["generate", "broken.toml", "-o", "x.parquet"],
            "not a valid recipe",
        ),
    ];
    for (args, expected) in cases {
        let out = chaoscast(dir.path(), args);
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(expected),
            "{args:?}: {err}"
        );
        assert_eq!(files_in(dir.path()), before, "{args:?} left a file");
    }
    assert_eq!(
        std::fs::read(dir.path().join("taken.parquet")).unwrap(),
        b"keep"
    );
    // A state that blows up during integration: an error, and still no file.
    let out = chaoscast(
        dir.path(),
        &["generate", "thomas", "--param", "a=-50", "-o", "x.parquet"],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("non-finite"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(files_in(dir.path()), before);
}

#[test]
fn train_then_eval_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 700 --horizon 5 -o t.parquet");
    let train = [
        "train",
        "--data",
        "t.parquet",
        "--model",
        "gru",
        "--lookback",
        "20",
        "--hidden",
        "8",
        "--epochs",
        "2",
        "--batch-size",
        "64",
        "--output",
        "run",
        "-q",
    ];
    let out = chaoscast(d, &train);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("trained gru for 2 epochs"),
        "{}",
        text(&out.stdout)
    );
    // A second run into the same folder needs --force.
    let again = chaoscast(d, &train);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("--force"),
        "{}",
        text(&again.stderr)
    );

    let out = chaoscast(d, &["eval", "run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/report.json")).unwrap()).unwrap();
    for key in ["nrmse_median", "nrmse_mean", "vpt_median_steps"] {
        assert!(
            report[key].as_f64().is_some_and(f64::is_finite),
            "{key}: {report}"
        );
    }
    for file in [
        "config.json",
        "metrics.csv",
        "model.mpk",
        "loss.png",
        "nrmse.png",
        "forecast_1.png",
    ] {
        assert!(d.join("run").join(file).is_file(), "{file} missing");
    }
    let metrics = std::fs::read_to_string(d.join("run/metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "header + 2 epochs");
    let steps = std::fs::read_to_string(d.join("run/nrmse_steps.csv")).unwrap();
    assert_eq!(
        steps.lines().count(),
        1 + 20,
        "header + a rollout of 4 H = 20 steps"
    );
    assert_eq!(report["rollout_steps"], 20);

    // Resume to 3 epochs: one more line of metrics, a checkpoint that says so.
    let out = chaoscast(d, &["train", "--resume", "run", "--epochs", "3", "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("for 3 epochs"),
        "{}",
        text(&out.stdout)
    );
    let metrics = std::fs::read_to_string(d.join("run/metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 4, "header + 3 epochs");
    let cfg = chaoscast::run::RunConfig::load(&d.join("run")).unwrap();
    assert_eq!(cfg.train.epochs, 3);

    // predict: the last L rows of a plain CSV in, H rows with the same columns out.
    let out = chaoscast(
        d,
        &[
            "generate",
            "thomas",
            "--samples",
            "30",
            "--seed",
            "4",
            "--format",
            "csv",
            "-o",
            "h.csv",
            "-q",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = chaoscast(
        d,
        &["predict", "run", "--input", "h.csv", "--output", "f.csv"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let forecast = std::fs::read_to_string(d.join("f.csv")).unwrap();
    let lines: Vec<&str> = forecast.lines().collect();
    assert_eq!(lines[0], "t,x,y,z");
    assert_eq!(lines.len(), 1 + 5, "header + H rows");
    let history = chaoscast::data::store::read_table(&d.join("h.csv")).unwrap();
    let f = chaoscast::forecaster::Forecaster::load(d.join("run")).unwrap();
    let expected = f
        .predict(&history.rows_of(f.names(), &d.join("h.csv")).unwrap())
        .unwrap();
    let written = chaoscast::data::store::read_table(&d.join("f.csv")).unwrap();
    let written = written.rows_of(f.names(), &d.join("f.csv")).unwrap();
    assert_eq!(written, expected);
    let out = chaoscast(
        d,
        &[
            "predict", "run", "-i", "h.csv", "-o", "f2.csv", "--steps", "12",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(d.join("f2.csv"))
            .unwrap()
            .lines()
            .count(),
        13
    );
}

/// Damaged checkpoints, another dataset, short histories, a CUDA request on a CPU build: one
/// clear line each, exit code 1.
#[test]
fn resume_and_predict_refuse_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (seed, file) in [("0", "a.parquet"), ("1", "b.parquet")] {
        let out = chaoscast(
            d,
            &[
                "generate",
                "thomas",
                "--samples",
                "500",
                "--horizon",
                "5",
                "--seed",
                seed,
                "-o",
                file,
                "-q",
            ],
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let out = chaoscast(
        d,
        &[
            "train",
            "--data",
            "a.parquet",
            "--model",
            "fdn",
            "--lookback",
            "20",
            "--hidden",
            "4",
            "--epochs",
            "1",
            "--batch-size",
            "64",
            "-o",
            "run",
            "-q",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fails = |args: &[&str], needle: &str| {
        let out = chaoscast(d, args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    };
    fails(
        &[
            "train",
            "--resume",
            "run",
            "--data",
            "b.parquet",
            "--epochs",
            "2",
        ],
        "is not the dataset this run was trained on",
    );
    fails(
        &["train", "--resume", "run", "--hidden", "8"],
        "cannot change a run being resumed",
    );
    // Refused whatever its value (a NaN, a count past i64::MAX too).
    fails(
        &["train", "--resume", "run", "--lr", "NaN"],
        "--lr cannot change a run being resumed",
    );
    fails(
        &["train", "--resume", "run", "--seed", "18446744073709551615"],
        "--seed cannot change a run being resumed",
    );
    fails(
        &[
            "train",
            "--data",
            "a.parquet",
            "--model",
            "gru",
            "--device",
            "cuda",
            "-o",
            "r2",
        ],
        "built without CUDA",
    );
    fails(
        &[
            "train",
            "--data",
            "a.parquet",
            "--model",
            "gru",
            "--vars",
            "q",
            "-o",
            "r3",
        ],
        "'q' matches no variable",
    );
    fails(
        &["predict", "run", "-i", "run/metrics.csv", "-o", "x.csv"],
        "has no column 'x'",
    );

    let ckpt = d.join("run/checkpoint.bin");
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &bytes[..bytes.len() - 100]).unwrap();
    fails(&["train", "--resume", "run", "--epochs", "2"], "damaged");
    std::fs::write(d.join("run/model.mpk"), b"garbage").unwrap();
    fails(&["eval", "run"], "model.mpk");
    assert!(!d.join("run/report.json").exists());
}

/// `Forecaster::predict` on a trained run equals the model's own forward pass on the same
/// window, de-normalised; rollout continues it.
#[test]
fn forecaster_predict_equals_model_forward() {
    use burn::backend::Flex;
    use burn::prelude::*;
    use chaoscast::forecaster::Forecaster;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "lorenz63 --samples 600 --horizon 4 -o l.parquet");
    let train = [
        "train",
        "--data",
        "l.parquet",
        "--model",
        "lstm",
        "--lookback",
        "16",
        "--hidden",
        "8",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--output",
        "run",
        "-q",
    ];
    assert!(chaoscast(d, &train).status.success());

    let f = Forecaster::load(d.join("run")).unwrap();
    assert_eq!((f.lookback(), f.horizon(), f.vars()), (16, 4, 3));
    let data = chaoscast::data::read_dataset(&d.join("l.parquet")).unwrap();
    let history: Vec<Vec<f32>> = (100..116)
        .map(|i| data.row(i).iter().map(|v| *v as f32).collect())
        .collect();
    let got = f.predict(&history).unwrap();
    assert_eq!((got.len(), got[0].len()), (4, 3));

    // The same window through the model by hand.
    let cfg = chaoscast::run::RunConfig::load(&d.join("run")).unwrap();
    let mut x: Vec<f64> = history.iter().flatten().map(|v| f64::from(*v)).collect();
    cfg.normalizer.normalize(&mut x);
    let x: Vec<f32> = x.iter().map(|v| *v as f32).collect();
    let input = Tensor::<Flex, 3>::from_data(TensorData::new(x, [1, 16, 3]), &Default::default());
    let mut y = f
        .model()
        .forward(input)
        .into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .unwrap();
    cfg.normalizer.denormalize(&mut y);
    for (a, b) in got.iter().flatten().zip(&y) {
        assert!(
            (f64::from(*a) - b).abs() < 1e-4 * (1.0 + b.abs()),
            "{a} vs {b}"
        );
    }
    let long = f.rollout(&history, 10).unwrap();
    assert_eq!(long.len(), 10);
    assert_eq!(long[..4], got[..]);
    assert!(f.predict(&history[..5]).is_err());
}

/// compare trains every cell, writes the tables, and a second call reuses finished cells and
/// redoes only a cell whose report is missing.
#[test]
fn compare_runs_every_cell_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 500 --horizon 5 -o t.parquet");
    std::fs::write(
        d.join("exp.toml"),
        r#"
datasets = ["t.parquet"]
models = ["fdn"]
seeds = [0, 1]
[train]
epochs = 1
lookback = 20
hidden = 4
batch-size = 64
[[variants]]
name = "baseline"
[[variants]]
name = "bio"
bio = "paper-default"
"#,
    )
    .unwrap();
    let out = chaoscast(d, &["compare", "exp.toml", "-o", "cmp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = std::fs::read_to_string(d.join("cmp/summary.md")).unwrap();
    assert!(summary.contains("| t | fdn | baseline | 2 |"), "{summary}");
    assert!(summary.contains("| t | fdn | bio | 2 |"), "{summary}");
    let cells = std::fs::read_to_string(d.join("cmp/cells.csv")).unwrap();
    assert_eq!(cells.lines().count(), 1 + 4);
    assert!(d.join("cmp/nrmse-t.png").is_file());
    let bio = d.join("cmp/cells/t/fdn/bio");
    let cfg = chaoscast::run::RunConfig::load(&cell_of(&bio, 1)).unwrap();
    assert_eq!(cfg.train.seed, 1);
    assert!(cfg.train.bio.splitting.is_some());
    let definition = std::fs::read_to_string(cell_of(&bio, 1).join("cell.json")).unwrap();
    assert!(definition.contains("\"data_fnv1a\""), "{definition}");

    std::fs::remove_file(cell_of(&bio, 0).join("report.json")).unwrap();
    let again = chaoscast(d, &["compare", "exp.toml", "-o", "cmp"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let log = text(&again.stderr);
    assert_eq!(log.matches("done earlier").count(), 3, "{log}");
    assert!(log.contains("bio seed 0: resuming"), "{log}");
    assert_eq!(
        std::fs::read_to_string(d.join("cmp/cells.csv")).unwrap(),
        cells
    );

    // A changed setting is a new cell, never the old one reused: the bio variant now asks for
    // the paper-tuned mechanisms, so its two cells train afresh beside the old ones, and the
    // summary holds the new ones only.
    let exp = std::fs::read_to_string(d.join("exp.toml")).unwrap();
    std::fs::write(
        d.join("exp.toml"),
        exp.replace("bio = \"paper-default\"", "bio = \"paper-tuned\""),
    )
    .unwrap();
    let changed = chaoscast(d, &["compare", "exp.toml", "-o", "cmp"]);
    assert!(changed.status.success(), "{}", text(&changed.stderr));
    let log = text(&changed.stderr);
    assert_eq!(log.matches("done earlier").count(), 2, "{log}");
    assert_eq!(log.matches(": training").count(), 2, "{log}");
    assert_eq!(cells_of(&bio, 0).len(), 2);
    let cells = std::fs::read_to_string(d.join("cmp/cells.csv")).unwrap();
    assert_eq!(cells.lines().count(), 1 + 4, "{cells}");
    let summary = std::fs::read_to_string(d.join("cmp/summary.md")).unwrap();
    assert!(summary.contains("| t | fdn | bio | 2 |"), "{summary}");
    assert!(summary.contains("- t fdn bio: "), "{summary}");
}

/// A list for a variant's key makes a grid: one variant per combination, named by its values,
/// each trained with exactly those values; an empty list and two variants of one name are
/// refused before anything is trained.
#[test]
fn compare_expands_lists_into_a_grid() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 400 --horizon 4 -o t.parquet");
    let head = r#"
datasets = ["t.parquet"]
models = ["gru"]
seeds = [0]
[train]
preset = "small"
epochs = 1
lookback = 12
hidden = 4
[[variants]]
name = "baseline"
"#;
    std::fs::write(
        d.join("exp.toml"),
        format!(
            "{head}[[variants]]\nname = \"bio\"\nfl-spread = [0.05, 0.2]\nwr-distance = [14, 30]\nws-groups = 2\n"
        ),
    )
    .unwrap();
    let out = chaoscast(d, &["compare", "exp.toml", "-o", "cmp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cells = std::fs::read_to_string(d.join("cmp/cells.csv")).unwrap();
    assert_eq!(cells.lines().count(), 1 + 5, "{cells}");
    for (spread, distance) in [(0.05, 14.0), (0.05, 30.0), (0.2, 14.0), (0.2, 30.0)] {
        let name = format!("bio+fl-spread={spread}+wr-distance={distance}");
        assert!(
            cells.contains(&format!("t,gru,{name},0,")),
            "{name}: {cells}"
        );
        let cfg =
            chaoscast::run::RunConfig::load(&cell_of(&d.join("cmp/cells/t/gru").join(&name), 0))
                .unwrap();
        let bio = cfg.train.bio;
        assert_eq!(bio.fuzzy_lr.map(|f| f.spread), Some(spread), "{name}");
        assert_eq!(
            bio.rejuvenation.map(|r| r.distance),
            Some(distance),
            "{name}"
        );
        assert_eq!(bio.splitting.map(|s| s.groups), Some(2), "{name}");
    }
    for (variant, why) in [
        (
            "name = \"x\"\nfl-spread = []\n",
            "fl-spread is an empty list",
        ),
        (
            "name = \"baseline\"\nfl-spread = 0.1\n",
            "two variants are named 'baseline'",
        ),
    ] {
        std::fs::write(d.join("bad.toml"), format!("{head}[[variants]]\n{variant}")).unwrap();
        let out = chaoscast(d, &["compare", "bad.toml", "-o", "bad"]);
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains(why), "{}", text(&out.stderr));
        assert!(!d.join("bad").exists());
    }

    // A cell whose training diverges is marked and scored (here it blew up in its first step,
    // so it has no model: infinite NRMSE), and the grid goes on; a second call keeps it.
    std::fs::write(
        d.join("div.toml"),
        format!("{head}[[variants]]\nname = \"blowup\"\nlr = 1e12\n"),
    )
    .unwrap();
    let out = chaoscast(d, &["compare", "div.toml", "-o", "div"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let log = text(&out.stderr);
    assert!(log.contains("blowup seed 0: diverged ("), "{log}");
    let summary = std::fs::read_to_string(d.join("div/summary.md")).unwrap();
    assert!(
        summary.contains("| t | gru | blowup | 1 (1 diverged) | inf"),
        "{summary}"
    );
    assert!(
        cell_of(&d.join("div/cells/t/gru/blowup"), 0)
            .join("diverged.txt")
            .is_file()
    );
    let again = chaoscast(d, &["compare", "div.toml", "-o", "div"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(text(&again.stderr).matches("done earlier").count(), 2);
}

/// The demo runs the whole pipeline (here at its smallest) and says where everything is.
#[test]
fn demo_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = chaoscast(
        d,
        &[
            "demo",
            "--samples",
            "2000",
            "--epochs",
            "1",
            "-o",
            "demo",
            "-q",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for row in [
        "| GRU | none | 1 |",
        "| GRU | paper-default | 1 |",
        "| ESN | none | 1 |",
    ] {
        assert!(stdout.contains(row), "{row} missing: {stdout}");
    }
    assert!(stdout.contains("Lyapunov times"), "{stdout}");
    assert!(stdout.contains("Next:"), "{stdout}");
    for file in [
        "thomas.parquet",
        "comparison.md",
        "comparison.png",
        "gru/report.json",
        "gru-bio/report.json",
        "gru-bio/forecast_1.png",
        "esn/report.json",
    ] {
        assert!(d.join("demo").join(file).is_file(), "{file} missing");
    }
    let gru = chaoscast::run::RunConfig::load(&d.join("demo/gru")).unwrap();
    assert!(gru.train.model.is_autoregressive() && gru.train.window_loss);
    let bio = chaoscast::run::RunConfig::load(&d.join("demo/gru-bio")).unwrap();
    assert!(bio.train.bio.fuzzy_lr.is_some() && bio.train.bio.rejuvenation.is_some());
    assert_eq!(bio.train.bio.splitting.as_ref().map(|s| s.groups), Some(2));
    let metrics = std::fs::read_to_string(d.join("demo/gru-bio/metrics.csv")).unwrap();
    let rejuvenated: usize = metrics
        .lines()
        .nth(1)
        .unwrap()
        .rsplit(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(rejuvenated > 0, "{metrics}");
}

/// The ESN is fitted in closed form (here with the validation search), evaluates like any model,
/// refuses the bio mechanisms, and runs in `compare` beside a gradient model, whose bio cells run
/// while the ESN's are skipped.
#[test]
fn esn_trains_searches_evaluates_and_compares() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 700 --horizon 5 -o t.parquet");
    let out = chaoscast(
        d,
        &[
            "train",
            "--data",
            "t.parquet",
            "--model",
            "esn",
            "--lookback",
            "20",
            "--hidden",
            "40",
            "--esn-search",
            "-o",
            "esn",
            "-q",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("trained esn for 1 epochs"),
        "{}",
        text(&out.stdout)
    );
    // The search tried the whole grid and the run kept its best row.
    let search = std::fs::read_to_string(d.join("esn/search.csv")).unwrap();
    let rows: Vec<Vec<f64>> = search
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 4 * 3 * 4, "{search}");
    let best = rows
        .iter()
        .filter(|r| r[4].is_finite())
        .min_by(|a, b| a[4].total_cmp(&b[4]))
        .unwrap();
    let cfg = chaoscast::run::RunConfig::load(&d.join("esn")).unwrap();
    let chaoscast::models::ModelConfig::Esn(esn) = &cfg.train.model else {
        panic!("an ESN run should hold an ESN config")
    };
    assert_eq!(
        [esn.spectral_radius, esn.leak, esn.ridge],
        [best[0], best[1], best[2]]
    );
    assert_eq!(esn.reservoir, 40);
    let metrics = chaoscast::run::load_metrics(&d.join("esn")).unwrap();
    assert_eq!(metrics.len(), 1);
    assert!((metrics[0].val_nrmse - best[4]).abs() < 1e-9);

    let out = chaoscast(d, &["eval", "esn"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("esn/report.json")).unwrap()).unwrap();
    let nrmse = report["nrmse_median"].as_f64().unwrap();
    let floor = report["persistence"]["nrmse_median"].as_f64().unwrap();
    assert!(nrmse < 0.5 * floor, "ESN {nrmse} vs persistence {floor}");

    // predict and the embedding API, as for every model: the CLI's forecast is the
    // Forecaster's.
    let out = chaoscast(
        d,
        &[
            "predict",
            "esn",
            "--input",
            "t.parquet",
            "--output",
            "f.csv",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let written = chaoscast::data::store::read_table(&d.join("f.csv")).unwrap();
    assert_eq!(written.rows(), 5);
    let f = chaoscast::forecaster::Forecaster::load(d.join("esn")).unwrap();
    let history = chaoscast::data::store::read_table(&d.join("t.parquet")).unwrap();
    let expected = f
        .predict(&history.rows_of(f.names(), &d.join("t.parquet")).unwrap())
        .unwrap();
    let got = written.rows_of(f.names(), &d.join("f.csv")).unwrap();
    for (a, b) in got.iter().flatten().zip(expected.iter().flatten()) {
        assert!((a - b).abs() <= 1e-4 * b.abs().max(1.0), "{a} vs {b}");
    }

    for (flags, says) in [
        (&["--model", "esn", "--bio", "paper-tuned"][..], "ESN"),
        (
            &["--model", "gru", "--leak", "0.5"][..],
            "--leak is a setting of the ESN",
        ),
    ] {
        let mut args = vec![
            "train",
            "--data",
            "t.parquet",
            "--lookback",
            "20",
            "-o",
            "bad",
        ];
        args.extend(flags);
        let out = chaoscast(d, &args);
        assert!(!out.status.success(), "{flags:?} should fail");
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    }

    std::fs::write(
        d.join("exp.toml"),
        r#"
datasets = ["t.parquet"]
models = ["esn", "gru"]
seeds = [0]
[train]
epochs = 1
lookback = 20
hidden = 8
batch-size = 64
leak = 0.9
sparsity = 0.5
[[variants]]
name = "baseline"
[[variants]]
name = "bio"
bio = "paper-tuned"
"#,
    )
    .unwrap();
    let out = chaoscast(d, &["compare", "exp.toml", "-o", "cmp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("t esn bio seed 0: skipped"));
    let summary = std::fs::read_to_string(d.join("cmp/summary.md")).unwrap();
    assert!(summary.contains("| t | esn | baseline | 1 |"), "{summary}");
    assert!(summary.contains("| t | gru | bio | 1 |"), "{summary}");
    assert!(!summary.contains("| t | esn | bio |"), "{summary}");
    let esn =
        chaoscast::run::RunConfig::load(&cell_of(&d.join("cmp/cells/t/esn/baseline"), 0)).unwrap();
    let chaoscast::models::ModelConfig::Esn(esn) = esn.train.model else {
        panic!("the esn cell should hold an ESN")
    };
    assert_eq!(esn.leak, 0.9);
}

/// The autoregressive decoder trains with a curriculum, records it, evaluates, refuses the
/// strategy flags without it and the decoder on the ESN, and forms a compare axis.
#[test]
fn autoregressive_decoder_trains_with_a_curriculum() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 600 --horizon 5 -o t.parquet");
    let run = |extra: &[&str]| small_train(d, 2, extra);
    let out = run(&[
        "--model",
        "lstm",
        "--decoder",
        "autoregressive",
        "--strategy",
        "increasing-inverse-sigmoid",
        "--tf-sampling",
        "per-sequence",
        "-o",
        "ar",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cfg = chaoscast::run::RunConfig::load(&d.join("ar")).unwrap();
    assert!(cfg.train.model.is_autoregressive());
    let expected = chaoscast::train::strategy::Strategy {
        sampling: chaoscast::train::strategy::Sampling::PerSequence,
        ..chaoscast::train::strategy::Strategy::named("increasing-inverse-sigmoid").unwrap()
    };
    assert_eq!(cfg.train.strategy, expected);
    // Without --sam the autoregressive decoder trains without sharpness-aware minimisation.
    assert_eq!(cfg.train.sharpness, chaoscast::train::asam::Sharpness::None);
    let out = chaoscast(d, &["eval", "ar"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    for (extra, says) in [
        (
            &[
                "--model",
                "gru",
                "--decoder",
                "direct",
                "--strategy",
                "free-running",
                "-o",
                "x",
            ][..],
            "--decoder autoregressive",
        ),
        (
            &["--model", "esn", "--decoder", "autoregressive", "-o", "x"][..],
            "for lstm, gru, fdn and transformer",
        ),
        (
            &[
                "--model",
                "gru",
                "--decoder",
                "autoregressive",
                "--strategy",
                "decreasing-exponential",
                "--tf-k",
                "2",
                "-o",
                "x",
            ][..],
            "0 < k < 1",
        ),
    ] {
        let out = run(extra);
        assert!(!out.status.success(), "{extra:?} should fail");
        assert!(text(&out.stderr).contains(says), "{}", text(&out.stderr));
    }

    std::fs::write(
        d.join("exp.toml"),
        r#"
datasets = ["t.parquet"]
models = ["gru", "fdn"]
seeds = [0]
[train]
epochs = 1
lookback = 20
hidden = 4
batch-size = 64
strategy = "free-running"
[[variants]]
name = "direct"
decoder = "direct"
[[variants]]
name = "ar"
decoder = "autoregressive"
"#,
    )
    .unwrap();
    let out = chaoscast(d, &["compare", "exp.toml", "-o", "cmp"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = std::fs::read_to_string(d.join("cmp/summary.md")).unwrap();
    for row in [
        "| t | gru | direct |",
        "| t | gru | ar |",
        "| t | fdn | direct |",
        "| t | fdn | ar |",
    ] {
        assert!(summary.contains(row), "{row} missing: {summary}");
    }
    let ar = chaoscast::run::RunConfig::load(&cell_of(&d.join("cmp/cells/t/gru/ar"), 0)).unwrap();
    assert!(ar.train.model.is_autoregressive());
    assert_eq!(
        ar.train.strategy,
        chaoscast::train::strategy::Strategy::named("free-running").unwrap()
    );
    let direct =
        chaoscast::run::RunConfig::load(&cell_of(&d.join("cmp/cells/t/gru/direct"), 0)).unwrap();
    assert_eq!(
        direct.train.strategy,
        chaoscast::train::strategy::Strategy::default()
    );
}

/// Without --preset, `train` uses the default recipe and records every part of it; the paper
/// preset keeps the paper's protocol; the new settings are flags and config keys, honoured or
/// refused with one sentence.
#[test]
fn the_default_recipe_and_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 600 --horizon 5 -o t.parquet");
    let run = |extra: &[&str]| small_train(d, 1, extra);
    let out = run(&["--model", "gru", "-o", "gru"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cfg = chaoscast::run::RunConfig::load(&d.join("gru"))
        .unwrap()
        .train;
    assert!(cfg.model.is_autoregressive() && cfg.window_loss);
    assert_eq!(
        cfg.strategy,
        chaoscast::train::strategy::Strategy::named("teacher-forcing").unwrap()
    );
    assert_eq!(
        (cfg.weight_decay, cfg.input_noise, cfg.clip_grad, cfg.stride),
        (0.0, 0.01, Some(1.0), 5)
    );
    assert_eq!(cfg.sharpness, chaoscast::train::asam::Sharpness::None);

    let out = run(&["--model", "lstm", "--preset", "paper", "-o", "paper"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cfg = chaoscast::run::RunConfig::load(&d.join("paper"))
        .unwrap()
        .train;
    assert!(!cfg.model.is_autoregressive() && !cfg.window_loss);
    assert_eq!(
        (cfg.weight_decay, cfg.input_noise, cfg.clip_grad),
        (5e-4, 0.0, None)
    );
    assert_eq!(cfg.optimizer, chaoscast::train::trainer::OptimizerKind::Sgd);
    assert_eq!(cfg.sharpness, chaoscast::train::asam::Sharpness::default());

    let out = run(&[
        "--model",
        "gru",
        "--weight-decay",
        "1e-4",
        "--clip-grad",
        "0",
        "--input-noise",
        "0",
        "--window-loss",
        "false",
        "--sam",
        "asam",
        "--rho",
        "0.05",
        "-o",
        "set",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cfg = chaoscast::run::RunConfig::load(&d.join("set"))
        .unwrap()
        .train;
    assert_eq!(
        (cfg.weight_decay, cfg.input_noise, cfg.clip_grad),
        (1e-4, 0.0, None)
    );
    assert!(!cfg.window_loss);
    assert_eq!(
        cfg.sharpness,
        chaoscast::train::asam::Sharpness::Asam {
            rho: 0.05,
            eta: 0.01
        }
    );

    let out = run(&["--model", "fdn", "-o", "fdn"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cfg = chaoscast::run::RunConfig::load(&d.join("fdn"))
        .unwrap()
        .train;
    let chaoscast::models::ModelConfig::Fdn(fdn) = &cfg.model else {
        panic!("an FDN")
    };
    assert!(fdn.is_autoregressive() && fdn.mixing == Some(true));

    std::fs::write(
        d.join("adamw.toml"),
        "model = \"gru\"\noptimizer = \"adamw\"\n",
    )
    .unwrap();
    std::fs::write(d.join("gpu.toml"), "model = \"gru\"\ndevice = \"gpu\"\n").unwrap();
    for (extra, says) in [
        (
            &["--model", "gru", "--rho", "0.1", "-o", "x"][..],
            "--rho is the radius",
        ),
        (
            &["--model", "gru", "--residual", "-o", "x"][..],
            "--residual is a setting of the FDN",
        ),
        (
            &["--model", "lstm", "--mixing", "-o", "x"][..],
            "--mixing is a setting of the FDN",
        ),
        (
            &["--model", "fdn", "--window-loss", "-o", "x"][..],
            "window_loss",
        ),
        (
            &["--model", "gru", "--bptt", "4", "-o", "x"][..],
            "--closed-loop-epochs",
        ),
        (
            &[
                "--model",
                "gru",
                "--decoder",
                "direct",
                "--closed-loop-epochs",
                "1",
                "-o",
                "x",
            ][..],
            "closed_loop",
        ),
        (
            &["--config", "adamw.toml", "-o", "x"][..],
            "unknown variant `adamw`, expected `sgd` or `adam`",
        ),
        (
            &["--config", "gpu.toml", "-o", "x"][..],
            "unknown variant `gpu`, expected `cpu` or `cuda`",
        ),
    ] {
        let out = run(extra);
        assert!(!out.status.success(), "{extra:?} should fail");
        assert!(
            text(&out.stderr).contains(says),
            "{extra:?}: {}",
            text(&out.stderr)
        );
        assert!(!d.join("x/config.json").exists(), "{extra:?} wrote a run");
    }
    let out = chaoscast(
        d,
        &["train", "--resume", "gru", "--weight-decay", "0.1", "-q"],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--weight-decay cannot change a run being resumed"));
}

/// Output into a pipe whose reader has gone (`chaoscast info … | head -1` once head is done)
/// ends the process quietly with the shell's SIGPIPE status, not with a panic.
#[test]
fn a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), "thomas --samples 200 -o t.parquet");
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_chaoscast"))
        .args(["info", "t.parquet"])
        .current_dir(dir.path())
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

//! Every setting honoured or refused, nothing lost (issue 15): each test here failed before its
//! fix.

use crate::cli::{chaoscast, dataset, small_train, text};
use crate::files_in;

/// The command fails with exit code 1 and one line of stderr containing `needle`.
fn refused(dir: &std::path::Path, args: &[&str], needle: &str) {
    let out = chaoscast(dir, args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
}

/// `train --resume` of a run that has trained all its epochs says so and how to ask for more,
/// instead of reporting success; with more epochs it goes on.
#[test]
fn resuming_a_finished_run_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 500 --horizon 5 -o t.parquet");
    let out = small_train(d, 2, &["--model", "gru", "-o", "run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    refused(
        d,
        &["train", "--resume", "run"],
        "nothing left to train: it has trained all 2 of its 2 epochs; pass --epochs",
    );
    refused(
        d,
        &["train", "--resume", "run", "--epochs", "2"],
        "all 2 of its 2 epochs",
    );
    let out = chaoscast(d, &["train", "--resume", "run", "--epochs", "3", "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let metrics = std::fs::read_to_string(d.join("run/metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 1 + 3);
}

/// A run that stopped early, or an ESN, has nothing left either; the reason names patience.
#[test]
fn nothing_left_names_the_reason() {
    use chaoscast::models::{CellKind, EsnConfig, ModelConfig, RecurrentConfig};
    use chaoscast::train::trainer::{EpochMetrics, TrainConfig, nothing_left};

    let epoch = |epoch: usize, val_nrmse: f64| EpochMetrics {
        epoch,
        train_loss: 0.1,
        val_loss: 0.1,
        val_nrmse,
        lr: 1e-3,
        seconds: 1.0,
        rejuvenated: 0,
    };
    let model = ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Gru, 3, 5).with_hidden(8));
    let mut cfg = TrainConfig::new(model);
    cfg.epochs = 10;
    cfg.patience = 3;
    // Best at epoch 2, then three epochs without improvement: stopped early.
    let history: Vec<_> = [0.5, 0.4, 0.45, 0.46, 0.47]
        .iter()
        .enumerate()
        .map(|(i, v)| epoch(i + 1, *v))
        .collect();
    let why = nothing_left(&cfg, &history, 2).unwrap();
    assert!(
        why.contains("stopped early after epoch 5") && why.contains("patience 3"),
        "{why}"
    );
    assert_eq!(nothing_left(&cfg, &history[..4], 2), None);
    cfg.patience = 4;
    assert_eq!(nothing_left(&cfg, &history, 2), None);
    let esn = TrainConfig::new(ModelConfig::Esn(EsnConfig::new(3, 5)));
    assert!(
        nothing_left(&esn, &history[..1], 1)
            .unwrap()
            .contains("ESN")
    );
    assert_eq!(nothing_left(&esn, &[], 0), None);
}

/// `train --force` into an old run's folder removes the old run's files before anything else, so
/// a new run that fails before its first epoch leaves no old checkpoint for `--resume` and no old
/// report beside its config; files that are not a run's stay.
#[test]
fn force_clears_the_old_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 500 --horizon 5 -o t.parquet");
    let out = small_train(d, 1, &["--model", "gru", "-o", "run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = chaoscast(d, &["eval", "run", "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::write(d.join("run/notes.txt"), "mine").unwrap();
    assert!(files_in(&d.join("run")).contains(&"report.json".to_string()));
    // A new run on data too short for its windows fails before its first epoch.
    dataset(d, "thomas --samples 60 --horizon 5 -o short.parquet");
    let out = chaoscast(
        d,
        &[
            "train",
            "--data",
            "short.parquet",
            "--model",
            "gru",
            "--lookback",
            "50",
            "--hidden",
            "8",
            "--epochs",
            "1",
            "-o",
            "run",
            "--force",
            "-q",
        ],
    );
    assert!(!out.status.success());
    // Only the new run's config (written first) and the user's file are left.
    let left = files_in(&d.join("run"));
    assert_eq!(left, ["config.json", "notes.txt"], "{left:?}");
    let cfg = chaoscast::run::RunConfig::load(&d.join("run")).unwrap();
    assert!(cfg.data_path.ends_with("short.parquet"), "{cfg:?}");
    refused(d, &["train", "--resume", "run"], "checkpoint.bin");
}

/// A run trained with weight splitting loads (through `run::load_model`) as the function it was
/// trained to compute, the grouped view of its stored weights; `run::load_weights` gives the
/// stored weights themselves, which compute something else.
#[test]
fn a_split_run_loads_as_the_trained_function() {
    use burn::backend::Flex;
    use burn::prelude::*;
    use chaoscast::run::{RunConfig, load_model, load_weights};

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 500 --horizon 5 -o t.parquet");
    let out = small_train(d, 1, &["--model", "gru", "--ws-groups", "2", "-o", "run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let run = d.join("run");
    let cfg = RunConfig::load(&run).unwrap();
    let device = Default::default();
    let x = Tensor::<Flex, 3>::random(
        [2, 20, 3],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let loaded = load_model::<Flex>(&cfg, &run, &device).unwrap();
    let stored = load_weights::<Flex>(&cfg, &run, &device).unwrap();
    let trained = chaoscast::bio::inference_view(stored.clone(), &cfg.train.bio);
    let y = |m: &chaoscast::models::Model<Flex>| -> Vec<f32> {
        m.forward(x.clone()).into_data().to_vec().unwrap()
    };
    assert_eq!(y(&loaded), y(&trained));
    assert_ne!(y(&loaded), y(&stored));
    let forecaster = chaoscast::forecaster::Forecaster::load(&run).unwrap();
    assert_eq!(y(forecaster.model()), y(&trained));
}

/// The FDN's layers are built for its own lookback: `TrainConfig::new` takes the windows' lookback
/// from it, and a config whose windows differ is refused instead of training on the oldest steps.
#[test]
fn the_fdn_and_its_windows_share_one_lookback() {
    use chaoscast::models::{FdnConfig, ModelConfig};
    use chaoscast::train::trainer::TrainConfig;

    let mut cfg = TrainConfig::new(ModelConfig::Fdn(FdnConfig::new(3, 20, 5).with_channels(4)));
    assert_eq!(cfg.lookback, 20);
    cfg.validate().unwrap();
    cfg.lookback = 150;
    let err = cfg.validate().unwrap_err().to_string();
    assert!(
        err.contains("built for windows of 20 steps but the training windows have 150"),
        "{err}"
    );
}

/// A dataset generated by name at the default parameters carries the system's measured exponent,
/// and so a horizon of one Lyapunov time, so the README's `generate thomas` then `train` works;
/// with other parameters the exponent is unknown and the error says what to do.
#[test]
fn a_dataset_generated_by_name_carries_a_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 1500 -o t.parquet");
    let out = small_train(d, 1, &["--model", "gru", "-o", "run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cfg = chaoscast::run::RunConfig::load(&d.join("run")).unwrap();
    // ceil(1 / (0.4918 · 0.0497)) = 41.
    assert_eq!(cfg.train.model.horizon(), 41);
    dataset(d, "thomas --samples 1500 --param a=1.9 -o a.parquet");
    refused(
        d,
        &[
            "train",
            "--data",
            "a.parquet",
            "--model",
            "gru",
            "-o",
            "run2",
        ],
        "pass --horizon (or generate with --lyapunov)",
    );
}

/// NaN or infinite values are reported as such, naming the row and column: in a dataset (where
/// they used to pass as data, or as "constant variable"), and in a `predict` input.
#[test]
fn non_finite_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 500 --horizon 5 --format csv -o t.csv");
    dataset(d, "thomas --samples 500 --horizon 5 -o t.parquet");
    let csv = std::fs::read_to_string(d.join("t.csv")).unwrap();
    let mut lines: Vec<String> = csv.lines().map(String::from).collect();
    // Row 3's x (the header is line 0).
    let mut cells: Vec<String> = lines[3].split(',').map(String::from).collect();
    cells[1] = "NaN".into();
    lines[3] = cells.join(",");
    std::fs::write(d.join("bad.csv"), lines.join("\n") + "\n").unwrap();
    std::fs::copy(d.join("t.json"), d.join("bad.json")).unwrap();
    refused(
        d,
        &["info", "bad.csv"],
        "holds a non-finite value (NaN or infinite) at row 3 of column x",
    );

    let out = small_train(d, 1, &["--model", "gru", "-o", "run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut input = String::from("x,y,z\n");
    for i in 0..30 {
        let x = if i == 25 {
            "inf".to_string()
        } else {
            "0.5".to_string()
        };
        input.push_str(&format!("{x},0.1,0.2\n"));
    }
    std::fs::write(d.join("in.csv"), input).unwrap();
    refused(
        d,
        &["predict", "run", "-i", "in.csv", "-o", "out.csv"],
        "the forecast history holds a non-finite value (NaN or infinite) at row 26 (x)",
    );
    assert!(!d.join("out.csv").exists());
}

/// A dataset written in another metadata format is refused on read, not misread.
#[test]
fn another_dataset_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 300 --horizon 5 --format csv -o t.csv");
    let side = std::fs::read_to_string(d.join("t.json")).unwrap();
    assert!(side.contains("\"format_version\": 1"), "{side}");
    std::fs::write(
        d.join("t.json"),
        side.replace("\"format_version\": 1", "\"format_version\": 2"),
    )
    .unwrap();
    refused(
        d,
        &["info", "t.csv"],
        "written in dataset format 2, and this chaoscast reads format 1",
    );
}

/// `integrate::sample` refuses zero samples (it used to panic) and Δt = 0 (it used to pass).
#[test]
fn sampling_needs_samples_and_a_positive_interval() {
    use chaoscast::progress::NoProgress;
    use chaoscast::systems::integrate::{Tolerances, sample};
    use chaoscast::systems::{Params, SystemName};

    let system = SystemName::Thomas.build(&Params::new()).unwrap();
    let y0 = [0.1, 0.0, 0.0];
    let tol = Tolerances::default();
    let err = sample(system.as_ref(), &y0, 0.0, 0.1, 0, tol, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("samples"), "{err}");
    let err = sample(system.as_ref(), &y0, 0.0, 0.0, 10, tol, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("dt"), "{err}");
    let rows = sample(system.as_ref(), &y0, 0.0, 0.1, 3, tol, &NoProgress).unwrap();
    assert_eq!(rows.len(), 9);
}

/// Two datasets of the same file name in different folders would share cell folders and summary
/// rows; `compare` refuses them before training anything.
#[test]
fn compare_refuses_two_datasets_of_one_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("a")).unwrap();
    std::fs::create_dir(d.join("b")).unwrap();
    dataset(d, "thomas --samples 300 --horizon 4 -o a/thomas.parquet");
    dataset(
        d,
        "thomas --samples 300 --horizon 4 --seed 1 -o b/thomas.parquet",
    );
    std::fs::write(
        d.join("exp.toml"),
        "datasets = [\"a/thomas.parquet\", \"b/thomas.parquet\"]\nmodels = [\"gru\"]\nseeds = [0]\n\
         [train]\nepochs = 1\nlookback = 12\nhidden = 4\n[[variants]]\nname = \"baseline\"\n",
    )
    .unwrap();
    refused(
        d,
        &["compare", "exp.toml", "-o", "cmp"],
        "have the same name, which names their cells",
    );
    assert!(!d.join("cmp").exists());
}

/// Every enumerated setting is one typed value for flags, `train --config` files and `compare`
/// experiments alike: a bad value is refused in each, naming the accepted ones, before anything
/// is written; a flag the model cannot honour (`--layers` for the FDN or the ESN, which have no
/// stacked layers and used to ignore it) is refused too.
#[test]
fn enumerated_settings_are_refused_alike_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 300 --horizon 4 -o t.parquet");
    for (key, bad, accepted) in [
        ("optimizer", "adamw", "`sgd` or `adam`"),
        ("sam", "SAM", "`asam`, `sam`, `none`"),
        ("device", "gpu", "`cpu` or `cuda`"),
        ("preset", "Paper", "`default`, `small`, `paper`"),
        ("fl-dist", "gauss", "`uniform`, `normal`, `lognormal`"),
        ("fl-target", "gradients", "`gradient` or `update`"),
        ("schedule", "step", "`cosine` or `plateau`"),
        (
            "model",
            "lstm2",
            "`lstm`, `gru`, `fdn`, `transformer`, `esn`",
        ),
    ] {
        let model = if key == "model" {
            ""
        } else {
            "model = \"gru\"\n"
        };
        std::fs::write(
            d.join("c.toml"),
            format!("data = \"t.parquet\"\n{model}output = \"r\"\n{key} = \"{bad}\"\n"),
        )
        .unwrap();
        refused(
            d,
            &["train", "--config", "c.toml"],
            &format!("unknown variant `{bad}`, expected"),
        );
        let err = text(&chaoscast(d, &["train", "--config", "c.toml"]).stderr);
        assert!(err.contains(accepted), "{key}: {err}");
        let flag = format!("--{key}");
        let mut args = vec!["train", "--data", "t.parquet", &flag, bad];
        if key != "model" {
            args.extend(["--model", "gru"]);
        }
        let out = chaoscast(d, &args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{key}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{key}: {err}");
        assert!(
            err.contains(&format!("invalid value '{bad}'")),
            "{key}: {err}"
        );
        assert!(err.contains("[possible values: "), "{key}: {err}");
        std::fs::write(
            d.join("exp.toml"),
            format!(
                "datasets = [\"t.parquet\"]\nmodels = [\"gru\"]\nseeds = [0]\n[[variants]]\nname = \"a\"\n{key} = \"{bad}\"\n"
            ),
        )
        .unwrap();
        if key != "model" {
            refused(
                d,
                &["compare", "exp.toml", "-o", "cmp"],
                &format!("unknown variant `{bad}`"),
            );
        }
        assert!(!d.join("r").exists() && !d.join("cmp").exists());
    }
    for model in ["fdn", "esn"] {
        refused(
            d,
            &[
                "train",
                "--data",
                "t.parquet",
                "--model",
                model,
                "--layers",
                "3",
                "-o",
                "r",
            ],
            "--layers stacks LSTM, GRU or transformer layers",
        );
    }
    assert!(!d.join("r").exists());
}

//! Climate checks (issue 18) on "models" whose answer is known: the true equations pass every
//! check with their own exponent, a model that repeats its input collapses, one that doubles it
//! diverges.

use chaoscast::climate::{Autonomous, ClimateConfig, Scale, SystemModel, Verdict, climate};
use chaoscast::prelude::*;
use chaoscast::systems::Params;
use chaoscast::systems::integrate::Tolerances;

const L: usize = 20;

fn thomas(samples: usize, seed: u64) -> Dataset {
    let mut spec = RecipeSpec::for_system(SystemName::Thomas);
    spec.samples = Some(samples);
    spec.seed = Some(seed);
    generate(&spec.resolve().unwrap(), &NoProgress).unwrap()
}

/// `n` windows of `L` rows spread over `data`.
fn windows(data: &Dataset, n: usize) -> Vec<f64> {
    let d = data.vars();
    (0..n)
        .flat_map(|i| {
            let s = i * (data.len() - L) / n;
            data.values[s * d..(s + L) * d].to_vec()
        })
        .collect()
}

/// Returns its last input row forever.
struct Persistence;

impl Autonomous for Persistence {
    fn lookback(&self) -> usize {
        L
    }
    fn vars(&self) -> usize {
        3
    }
    fn run(&self, windows: &[f64], n: usize, steps: usize) -> chaoscast::Result<Vec<f64>> {
        Ok((0..n)
            .flat_map(|i| {
                let last = windows[(i * L + L - 1) * 3..(i * L + L) * 3].to_vec();
                std::iter::repeat_n(last, steps).flatten()
            })
            .collect())
    }
}

/// Each step doubles the previous row.
struct Doubling;

impl Autonomous for Doubling {
    fn lookback(&self) -> usize {
        L
    }
    fn vars(&self) -> usize {
        3
    }
    fn run(&self, windows: &[f64], n: usize, steps: usize) -> chaoscast::Result<Vec<f64>> {
        let mut out = Vec::new();
        for i in 0..n {
            let mut row = windows[(i * L + L - 1) * 3..(i * L + L) * 3].to_vec();
            for _ in 0..steps {
                row.iter_mut().for_each(|v| *v *= 2.0);
                out.extend_from_slice(&row);
            }
        }
        Ok(out)
    }
}

#[test]
fn the_true_system_passes_with_its_own_exponent() {
    let data = thomas(3000, 0);
    let dt = data.meta.recipe.dt;
    let lambda = SystemName::Thomas.defaults().lyapunov;
    // 400 Lyapunov times per start (about 800 time units), 5 starts.
    let cfg = ClimateConfig::new(dt, Some(lambda), 400.0);
    assert_eq!(cfg.tau, 20);
    let truth = thomas(cfg.steps, 1);
    let scale = Scale::of(&data.values, 3);
    let system = SystemName::Thomas.build(&Params::new()).unwrap();
    let model = SystemModel::new(system, dt, Tolerances::default(), L);
    let reference = thomas(cfg.steps, 2);
    let c = climate(
        &model,
        &windows(&data, 5),
        &truth.values,
        Some(&reference.values),
        &scale,
        Some(lambda),
        &cfg,
    )
    .unwrap();
    assert_eq!(c.on_attractor, 5, "{:?}", c.starts);
    let exponent = c.lyapunov_median.unwrap();
    assert!(
        (exponent - lambda).abs() < 0.05 * lambda,
        "model-path exponent {exponent} against {lambda}"
    );
    let w = c.wasserstein_median.unwrap();
    let s = c.spectrum_decades_median.unwrap();
    assert!(w < 0.1, "Wasserstein-1 {w} σ");
    assert!(s < 0.2, "spectrum distance {s} decades");
    // The system's own runs are as far from the truth as a second true trajectory is.
    let (rw, rs) = (
        c.reference_wasserstein.unwrap(),
        c.reference_spectrum_decades.unwrap(),
    );
    assert!(
        w < 2.0 * rw + 0.01 && s < 2.0 * rs + 0.01,
        "{w} {s} against {rw} {rs}"
    );
    eprintln!("true Thomas: exponent {exponent:.4}, W1 {w:.4} σ, spectrum {s:.4} decades");
}

#[test]
fn persistence_collapses_and_doubling_diverges() {
    let data = thomas(1500, 0);
    let dt = data.meta.recipe.dt;
    let cfg = ClimateConfig::new(dt, Some(0.4918), 30.0);
    let truth = thomas(cfg.steps, 1);
    let scale = Scale::of(&data.values, 3);
    let starts = windows(&data, 3);
    let c = climate(
        &Persistence,
        &starts,
        &truth.values,
        None,
        &scale,
        None,
        &cfg,
    )
    .unwrap();
    assert_eq!(c.collapsed, 3, "{:?}", c.starts);
    assert!(c.starts.iter().all(|s| s.verdict == Verdict::Collapsed));
    // A fixed point: nearby runs stay exactly as far apart.
    assert!(
        c.lyapunov_median.unwrap().abs() < 1e-9,
        "{:?}",
        c.lyapunov_median
    );
    // Far from the truth in density and spectrum.
    assert!(c.wasserstein_median.unwrap() > 0.3);
    // A constant variable has no units to measure distances in: refused, not divided by zero.
    let mut flat = scale.clone();
    flat.std[1] = 0.0;
    let err = climate(
        &Persistence,
        &starts,
        &truth.values,
        None,
        &flat,
        None,
        &cfg,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("variable 1 has standard deviation 0"), "{err}");
    let c = climate(&Doubling, &starts, &truth.values, None, &scale, None, &cfg).unwrap();
    assert_eq!(c.diverged, 3, "{:?}", c.starts);
    assert_eq!(c.lyapunov_median, None);
    let csv = chaoscast::climate::climate_csv(&c, &["x".into(), "y".into(), "z".into()]);
    assert_eq!(csv.lines().count(), 4);
    assert!(
        csv.lines().nth(1).unwrap().starts_with("0,diverged,"),
        "{csv}"
    );
}

/// `eval --climate` from the command line: the report gains a climate entry, climate.csv a line
/// per start, and the three plots are drawn; `--steps` without `--climate` is refused.
#[test]
fn eval_judges_the_climate_of_a_run() {
    use crate::cli::{chaoscast, dataset, small_train, text};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 500 --horizon 5 -o t.parquet");
    let out = small_train(d, 1, &["--model", "gru", "-o", "run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = chaoscast(d, &["eval", "run", "--steps", "300"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let out = chaoscast(
        d,
        &[
            "eval",
            "run",
            "--climate",
            "--steps",
            "300",
            "--starts",
            "2",
            "-q",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = std::fs::read_to_string(d.join("run/climate.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.starts_with("start,verdict,lyapunov,spectrum_decades,wasserstein_x"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("run/report.json")).unwrap()).unwrap();
    let c = &report["climate"];
    assert_eq!(c["config"]["steps"], 300);
    let counted = ["on_attractor", "collapsed", "diverged"]
        .iter()
        .map(|k| c[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(counted, 2);
    assert!((c["system_lyapunov"].as_f64().unwrap() - 0.4918).abs() < 1e-12);
    if c["diverged"] != 2 {
        for plot in [
            "climate_attractor.png",
            "climate_spectra.png",
            "climate_density.png",
        ] {
            assert!(d.join("run").join(plot).is_file(), "{plot}");
        }
    }
}

/// `climate = true` in an experiment judges every cell, finished ones included, and the tables
/// gain the climate columns.
#[test]
fn compare_judges_the_climate_of_every_cell() {
    use crate::cli::{chaoscast, dataset, text};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    dataset(d, "thomas --samples 500 --horizon 5 -o t.parquet");
    let exp = "datasets = [\"t.parquet\"]\nmodels = [\"gru\"]\nseeds = [0, 1]\n\
               [train]\nepochs = 1\nlookback = 12\nhidden = 4\n[[variants]]\nname = \"baseline\"\n";
    std::fs::write(d.join("exp.toml"), exp).unwrap();
    let out = chaoscast(d, &["compare", "exp.toml", "-o", "cmp", "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = std::fs::read_to_string(d.join("cmp/summary.md")).unwrap();
    assert!(!summary.contains("Climate"), "{summary}");
    std::fs::write(d.join("exp.toml"), format!("climate = true\n{exp}")).unwrap();
    let out = chaoscast(d, &["compare", "exp.toml", "-o", "cmp", "-q"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = std::fs::read_to_string(d.join("cmp/summary.md")).unwrap();
    assert!(
        summary.contains("Climate (long autonomous runs"),
        "{summary}"
    );
    assert!(summary.contains("| t | gru | baseline |"), "{summary}");
    let cells = std::fs::read_to_string(d.join("cmp/cells.csv")).unwrap();
    for line in cells.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let (collapsed, diverged) = (fields[15], fields[16]);
        assert!(!collapsed.is_empty() && !diverged.is_empty(), "{line}");
    }
}

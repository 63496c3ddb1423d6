//! The run's charts (the `plots` feature): NRMSE over the horizon, the loss curves, three test
//! forecasts against the truth, and the climate's attractor, spectra and densities.

use std::path::Path;

use crate::climate::{Climate, Scale};
use crate::data::Dataset;
use crate::data::window::WindowSpec;
use crate::error::Result;
use crate::metrics::{ForecastReport, VPT_THRESHOLD};
use crate::plots;
use crate::run::load_metrics;

/// nrmse.png, loss.png and forecast_1..3.png (the first, middle and last test window).
pub(super) fn run_plots(
    run: &Path,
    data: &Dataset,
    report: &ForecastReport,
    test: &[usize],
    truths: &[f64],
    preds: &[f64],
    spec: WindowSpec,
) -> Result<()> {
    let vars = data.vars();
    plots::nrmse_over_horizon(
        &run.join("nrmse.png"),
        &report.nrmse_per_step,
        VPT_THRESHOLD,
    )?;
    let history = load_metrics(run)?;
    let train: Vec<f64> = history.iter().map(|m| m.train_loss).collect();
    let val: Vec<f64> = history.iter().map(|m| m.val_loss).collect();
    plots::loss_curves(&run.join("loss.png"), &train, &val)?;
    let block = spec.horizon * vars;
    let count = test.len();
    for (k, i) in [0, count / 2, count - 1].into_iter().enumerate() {
        let s = test[i];
        let history = &data.values[s * vars..(s + spec.lookback) * vars];
        plots::forecast_vs_truth(
            &run.join(format!("forecast_{}.png", k + 1)),
            &data.names,
            data.meta.recipe.dt,
            history,
            &truths[i * block..(i + 1) * block],
            &preds[i * block..(i + 1) * block],
            3,
        )?;
    }
    Ok(())
}

/// The attractor's projection on the first two variables, the spectra and the densities of up to
/// three variables: the truth in grey, the first run that did not diverge in red.
pub(super) fn climate_plots(
    run: &Path,
    c: &Climate,
    truth: &[f64],
    names: &[String],
    scale: &Scale,
) -> Result<()> {
    const GREY: (u8, u8, u8) = (150, 150, 150);
    const RED: (u8, u8, u8) = (214, 39, 40);
    let d = names.len();
    let shown = d.min(3);
    let Some(model) = &c.example_run else {
        return Ok(());
    };
    let line = |label: &str, points: Vec<(f64, f64)>, color| plots::Line {
        label: label.into(),
        points,
        color,
    };
    let pairs = |rows: &[f64]| -> Vec<(f64, f64)> {
        rows.chunks_exact(d)
            .take(4000)
            .map(|r| (r[0], r[d.min(2) - 1]))
            .collect()
    };
    if d >= 2 {
        plots::render(
            &run.join("climate_attractor.png"),
            &[plots::Panel {
                title: format!("attractor, {} against {}", names[1], names[0]),
                x_label: names[0].clone(),
                y_label: names[1].clone(),
                lines: vec![
                    line("truth", pairs(truth), GREY),
                    line("model", pairs(model), RED),
                ],
            }],
            700,
            600,
        )?;
    }
    if let Some((t, m)) = &c.example_spectra {
        let panels: Vec<plots::Panel> = (0..shown)
            .map(|j| plots::Panel {
                title: format!("power spectrum of {}", names[j]),
                x_label: "frequency (1 / time unit)".into(),
                y_label: "log10 power".into(),
                lines: vec![
                    line("truth", t[j].clone(), GREY),
                    line("model", m[j].clone(), RED),
                ],
            })
            .collect();
        plots::render(&run.join("climate_spectra.png"), &panels, 800, 260)?;
    }
    let density = |rows: &[f64], j: usize| -> Vec<(f64, f64)> {
        let (lo, hi) = (scale.min[j], scale.max[j]);
        let margin = 0.1 * (hi - lo);
        let (lo, hi) = (lo - margin, hi + margin);
        const BINS: usize = 60;
        let width = (hi - lo) / BINS as f64;
        let mut counts = [0.0; BINS];
        let values: Vec<f64> = rows.iter().skip(j).step_by(d).copied().collect();
        for v in &values {
            let b = ((v - lo) / width).floor();
            if b >= 0.0 && (b as usize) < BINS {
                counts[b as usize] += 1.0;
            }
        }
        counts
            .iter()
            .enumerate()
            .map(|(b, n)| {
                (
                    lo + (b as f64 + 0.5) * width,
                    n / (values.len() as f64 * width),
                )
            })
            .collect()
    };
    let panels: Vec<plots::Panel> = (0..shown)
        .map(|j| plots::Panel {
            title: format!("density of {}", names[j]),
            x_label: names[j].clone(),
            y_label: "density".into(),
            lines: vec![
                line("truth", density(truth, j), GREY),
                line("model", density(model, j), RED),
            ],
        })
        .collect();
    plots::render(&run.join("climate_density.png"), &panels, 800, 260)?;
    Ok(())
}

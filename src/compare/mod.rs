//! Tables for `chaoscast compare`: per-cell results (one trained and evaluated run per dataset,
//! model, variant and seed) summarised per dataset, model and variant like the paper's
//! Supplementary Table 7: the median test NRMSE as mean ± standard deviation over seeds, its
//! change against the baseline variant with a 95 % confidence interval of the difference paired
//! by seed, the learning-speed measures (epochs to the best validation NRMSE, area under the
//! validation curve) and wall time.

use serde::{Deserialize, Serialize};

/// One finished cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CellResult {
    /// Dataset name (its file stem).
    pub dataset: String,
    /// Model name.
    pub model: String,
    /// Variant name.
    pub variant: String,
    /// Seed.
    pub seed: u64,
    /// Median test NRMSE.
    pub nrmse_median: f64,
    /// Mean test NRMSE.
    pub nrmse_mean: f64,
    /// Median valid prediction time in steps.
    pub vpt_median_steps: f64,
    /// Epoch of the best validation NRMSE (1-based).
    pub best_epoch: usize,
    /// Epochs run.
    pub epochs: usize,
    /// Whether training diverged (a non-finite loss); the NRMSE is then its best checkpoint's,
    /// or infinite without one.
    #[serde(default)]
    pub diverged: bool,
    /// Area under the validation curve: the sum over the epochs run of the validation NRMSE
    /// (one unit a epoch; lower is faster learning when cells ran the same epochs).
    #[serde(default)]
    pub val_auc: f64,
    /// Training wall time in seconds.
    pub seconds: f64,
    /// The climate of the cell's model (`climate = true` in the experiment), see
    /// [`crate::climate`].
    #[serde(default)]
    pub climate: Option<CellClimate>,
}

/// A cell's climate numbers: medians over its starts, and the verdicts counted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CellClimate {
    /// The model's largest Lyapunov exponent.
    pub lyapunov: Option<f64>,
    /// Mean Wasserstein-1 distance over variables, σ units.
    pub wasserstein: Option<f64>,
    /// Spectrum distance, decades.
    pub spectrum_decades: Option<f64>,
    /// Starts on the attractor.
    pub on_attractor: usize,
    /// Starts collapsed.
    pub collapsed: usize,
    /// Starts diverged.
    pub diverged: usize,
}

/// A summary row's climate: means over the seeds that have the number, verdicts summed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SummaryClimate {
    /// Mean of the cells' exponents.
    pub lyapunov_mean: Option<f64>,
    /// Mean of the cells' Wasserstein-1 distances.
    pub wasserstein_mean: Option<f64>,
    /// Mean of the cells' spectrum distances.
    pub spectrum_decades_mean: Option<f64>,
    /// Starts over all seeds: on the attractor, collapsed, diverged.
    pub on_attractor: usize,
    /// See [`Self::on_attractor`].
    pub collapsed: usize,
    /// See [`Self::on_attractor`].
    pub diverged: usize,
}

impl SummaryClimate {
    fn of(cells: &[&CellClimate]) -> Self {
        let mean = |f: &dyn Fn(&CellClimate) -> Option<f64>| {
            let v: Vec<f64> = cells.iter().filter_map(|c| f(c)).collect();
            (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
        };
        Self {
            lyapunov_mean: mean(&|c| c.lyapunov),
            wasserstein_mean: mean(&|c| c.wasserstein),
            spectrum_decades_mean: mean(&|c| c.spectrum_decades),
            on_attractor: cells.iter().map(|c| c.on_attractor).sum(),
            collapsed: cells.iter().map(|c| c.collapsed).sum(),
            diverged: cells.iter().map(|c| c.diverged).sum(),
        }
    }
}

/// The difference of a variant's median test NRMSE from the baseline's, paired by seed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Paired {
    /// Seeds both have.
    pub seeds: usize,
    /// Mean over those seeds of variant − baseline (negative: the variant is better).
    pub mean: f64,
    /// Lower end of the 95 % confidence interval (Student's t, `seeds − 1` degrees of freedom).
    pub low: f64,
    /// Upper end of the interval.
    pub high: f64,
}

impl Paired {
    /// Whether the interval excludes zero: a difference significant at the 5 % level.
    pub fn significant(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (`df ≥ 1`): a table to 30, the
/// Cornish–Fisher expansion about the normal quantile beyond (error below 1e-4 there).
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706_205, 4.302_653, 3.182_446, 2.776_445, 2.570_582, 2.446_912, 2.364_624, 2.306_004,
        2.262_157, 2.228_139, 2.200_985, 2.178_813, 2.160_369, 2.144_787, 2.131_450, 2.119_905,
        2.109_816, 2.100_922, 2.093_024, 2.085_963, 2.079_614, 2.073_873, 2.068_658, 2.063_899,
        2.059_539, 2.055_529, 2.051_831, 2.048_407, 2.045_230, 2.042_272,
    ];
    assert!(df >= 1, "Student's t needs at least one degree of freedom");
    if df <= TABLE.len() {
        return TABLE[df - 1];
    }
    let z: f64 = 1.959_964;
    let n = df as f64;
    z + (z.powi(3) + z) / (4.0 * n)
        + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n)
        + (3.0 * z.powi(7) + 19.0 * z.powi(5) + 17.0 * z.powi(3) - 15.0 * z) / (384.0 * n.powi(3))
}

/// The paired difference `variant − baseline` over the seeds both have, with its 95 % t
/// interval; `None` with fewer than two such seeds or a non-finite value among them (a diverged
/// cell).
pub fn paired(baseline: &[(u64, f64)], variant: &[(u64, f64)]) -> Option<Paired> {
    let diffs: Vec<f64> = variant
        .iter()
        .filter_map(|&(seed, v)| {
            baseline
                .iter()
                .find(|&&(s, _)| s == seed)
                .map(|&(_, b)| v - b)
        })
        .collect();
    if diffs.len() < 2 || diffs.iter().any(|d| !d.is_finite()) {
        return None;
    }
    let (mean, std) = mean_std(&diffs);
    let half = t_975(diffs.len() - 1) * std / (diffs.len() as f64).sqrt();
    Some(Paired {
        seeds: diffs.len(),
        mean,
        low: mean - half,
        high: mean + half,
    })
}

/// The bar series of `dataset`'s plot: one per variant, one bar per model, the mean median NRMSE
/// with its standard deviation; a model without a row for the variant (a skipped cell) has no
/// bar, not a bar of height 0.
#[cfg(feature = "plots")]
pub fn bar_series(
    rows: &[SummaryRow],
    dataset: &str,
    models: &[String],
    variants: &[String],
) -> Vec<crate::plots::Bars> {
    variants
        .iter()
        .map(|v| {
            let pick = |m: &String| {
                rows.iter()
                    .find(|r| r.dataset == dataset && &r.model == m && &r.variant == v)
            };
            crate::plots::Bars {
                label: v.clone(),
                values: models
                    .iter()
                    .map(|m| pick(m).map(|r| r.nrmse_mean))
                    .collect(),
                errors: models
                    .iter()
                    .map(|m| pick(m).map_or(0.0, |r| r.nrmse_std))
                    .collect(),
            }
        })
        .collect()
}

/// One line of the summary.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SummaryRow {
    /// Dataset name.
    pub dataset: String,
    /// Model name.
    pub model: String,
    /// Variant name.
    pub variant: String,
    /// Seeds summarised.
    pub seeds: usize,
    /// Of those, the cells whose training diverged.
    pub diverged: usize,
    /// Mean over seeds of the median test NRMSE.
    pub nrmse_mean: f64,
    /// Its sample standard deviation over seeds (0 for one seed).
    pub nrmse_std: f64,
    /// Change of `nrmse_mean` against the baseline variant of the same dataset and model, in
    /// percent (negative: better); `None` for the baseline itself or without one.
    pub change_percent: Option<f64>,
    /// The difference of the median test NRMSE from the baseline's, paired by seed, with its
    /// 95 % interval; `None` for the baseline itself, without one, or with fewer than two
    /// paired seeds.
    pub vs_baseline: Option<Paired>,
    /// Mean over seeds of the median valid prediction time, steps.
    pub vpt_mean: f64,
    /// Mean epoch of the best validation NRMSE.
    pub best_epoch_mean: f64,
    /// Mean area under the validation curve.
    pub val_auc_mean: f64,
    /// Mean training wall time per cell, seconds.
    pub seconds_mean: f64,
    /// The climate, where the cells were judged on it.
    pub climate: Option<SummaryClimate>,
}

fn mean_std(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Summarises `cells` per dataset, model and variant, in the order they first appear;
/// `baseline` names the variant the others are compared with.
pub fn summarise(cells: &[CellResult], baseline: &str) -> Vec<SummaryRow> {
    let mut keys: Vec<(String, String, String)> = Vec::new();
    for c in cells {
        let key = (c.dataset.clone(), c.model.clone(), c.variant.clone());
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let rows: Vec<SummaryRow> = keys
        .into_iter()
        .map(|(dataset, model, variant)| {
            let group: Vec<&CellResult> = cells
                .iter()
                .filter(|c| c.dataset == dataset && c.model == model && c.variant == variant)
                .collect();
            let nrmse: Vec<f64> = group.iter().map(|c| c.nrmse_median).collect();
            let (nrmse_mean, nrmse_std) = mean_std(&nrmse);
            let n = group.len() as f64;
            SummaryRow {
                seeds: group.len(),
                diverged: group.iter().filter(|c| c.diverged).count(),
                nrmse_mean,
                nrmse_std,
                change_percent: None,
                vs_baseline: None,
                vpt_mean: group.iter().map(|c| c.vpt_median_steps).sum::<f64>() / n,
                best_epoch_mean: group.iter().map(|c| c.best_epoch as f64).sum::<f64>() / n,
                val_auc_mean: group.iter().map(|c| c.val_auc).sum::<f64>() / n,
                seconds_mean: group.iter().map(|c| c.seconds).sum::<f64>() / n,
                climate: {
                    let judged: Vec<&CellClimate> =
                        group.iter().filter_map(|c| c.climate.as_ref()).collect();
                    (!judged.is_empty()).then(|| SummaryClimate::of(&judged))
                },
                dataset,
                model,
                variant,
            }
        })
        .collect();
    let by_seed = |r: &SummaryRow, variant: &str| -> Vec<(u64, f64)> {
        cells
            .iter()
            .filter(|c| c.dataset == r.dataset && c.model == r.model && c.variant == variant)
            .map(|c| (c.seed, c.nrmse_median))
            .collect()
    };
    rows.iter()
        .map(|r| {
            let base = rows
                .iter()
                .find(|b| b.dataset == r.dataset && b.model == r.model && b.variant == baseline);
            let change_percent = match base {
                Some(b) if r.variant != baseline && b.nrmse_mean > 0.0 => {
                    Some(100.0 * (r.nrmse_mean - b.nrmse_mean) / b.nrmse_mean)
                }
                _ => None,
            };
            let vs_baseline = match base {
                Some(_) if r.variant != baseline => {
                    paired(&by_seed(r, baseline), &by_seed(r, &r.variant))
                }
                _ => None,
            };
            SummaryRow {
                change_percent,
                vs_baseline,
                ..r.clone()
            }
        })
        .collect()
}

/// One sentence a compared variant: which way it differs from the baseline and whether
/// significantly.
fn verdict(r: &SummaryRow, baseline: &str) -> Option<String> {
    if r.variant == baseline {
        return None;
    }
    let who = format!("{} {} {}", r.dataset, r.model, r.variant);
    let Some(p) = r.vs_baseline else {
        return Some(format!(
            "- {who}: no interval (fewer than two seeds paired with {baseline}, or a diverged cell)."
        ));
    };
    let interval = format!(
        "mean paired difference {:+.4}, 95 % CI {:+.4} to {:+.4}, {} seeds",
        p.mean, p.low, p.high, p.seeds
    );
    Some(if !p.significant() {
        format!("- {who}: no significant difference from {baseline} ({interval}).")
    } else if p.mean < 0.0 {
        format!("- {who}: **lower** NRMSE than {baseline}, significant at 5 % ({interval}).")
    } else {
        format!("- {who}: **higher** NRMSE than {baseline}, significant at 5 % ({interval}).")
    })
}

/// The summary as a Markdown table.
pub fn markdown(rows: &[SummaryRow], baseline: &str) -> String {
    let mut out = format!(
        "| dataset | model | variant | seeds | median NRMSE (mean ± std) | vs {baseline} | paired difference (95 % CI) | median VPT (steps) | epochs to best | validation AUC | time per cell |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {}{} | {:.4} ± {:.4} | {} | {} | {:.1} | {:.1} | {:.3} | {:.0} s |\n",
            r.dataset,
            r.model,
            r.variant,
            r.seeds,
            if r.diverged > 0 {
                format!(" ({} diverged)", r.diverged)
            } else {
                String::new()
            },
            r.nrmse_mean,
            r.nrmse_std,
            r.change_percent
                .map(|c| format!("{c:+.1} %"))
                .unwrap_or_else(|| "—".into()),
            r.vs_baseline
                .map(|p| format!("{:+.4} [{:+.4}, {:+.4}]", p.mean, p.low, p.high))
                .unwrap_or_else(|| "—".into()),
            r.vpt_mean,
            r.best_epoch_mean,
            r.val_auc_mean,
            r.seconds_mean
        ));
    }
    if rows.iter().any(|r| r.climate.is_some()) {
        out.push_str(
            "\nClimate (long autonomous runs from test-split starts against a regenerated true \
             trajectory, see `chaoscast eval --climate`; means over seeds of the per-cell \
             medians):\n\n\
             | dataset | model | variant | largest exponent | Wasserstein-1 (σ) | spectrum (decades) | starts on attractor / collapsed / diverged |\n\
             | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        let value = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.3}"));
        for r in rows {
            if let Some(c) = &r.climate {
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} | {} | {} / {} / {} |\n",
                    r.dataset,
                    r.model,
                    r.variant,
                    value(c.lyapunov_mean),
                    value(c.wasserstein_mean),
                    value(c.spectrum_decades_mean),
                    c.on_attractor,
                    c.collapsed,
                    c.diverged
                ));
            }
        }
    }
    let verdicts: Vec<String> = rows.iter().filter_map(|r| verdict(r, baseline)).collect();
    if !verdicts.is_empty() {
        out.push_str(&format!(
            "\nAgainst {baseline} (the difference of the median test NRMSE, variant − {baseline}, \
             paired by seed; Student's t interval; validation AUC: the sum of the validation NRMSE \
             over the epochs run):\n\n"
        ));
        for v in verdicts {
            out.push_str(&v);
            out.push('\n');
        }
    }
    out
}

/// One line per cell as CSV.
pub fn cells_csv(cells: &[CellResult]) -> String {
    let mut out = String::from(
        "dataset,model,variant,seed,nrmse_median,nrmse_mean,vpt_median_steps,best_epoch,epochs,diverged,val_auc,seconds,climate_lyapunov,climate_wasserstein,climate_spectrum_decades,climate_collapsed,climate_diverged\n",
    );
    let opt = |v: Option<f64>| v.map(|c| c.to_string()).unwrap_or_default();
    for c in cells {
        let climate = c.climate.clone().unwrap_or_default();
        let judged = c.climate.is_some();
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            c.dataset,
            c.model,
            c.variant,
            c.seed,
            c.nrmse_median,
            c.nrmse_mean,
            c.vpt_median_steps,
            c.best_epoch,
            c.epochs,
            c.diverged,
            c.val_auc,
            c.seconds,
            opt(climate.lyapunov),
            opt(climate.wasserstein),
            opt(climate.spectrum_decades),
            if judged {
                climate.collapsed.to_string()
            } else {
                String::new()
            },
            if judged {
                climate.diverged.to_string()
            } else {
                String::new()
            }
        ));
    }
    out
}

/// The summary as CSV.
pub fn csv(rows: &[SummaryRow]) -> String {
    let mut out = String::from(
        "dataset,model,variant,seeds,diverged,nrmse_mean,nrmse_std,change_percent,diff_mean,diff_low,diff_high,vpt_mean,best_epoch_mean,val_auc_mean,seconds_mean,climate_lyapunov_mean,climate_wasserstein_mean,climate_spectrum_decades_mean\n",
    );
    let opt = |v: Option<f64>| v.map(|c| c.to_string()).unwrap_or_default();
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.dataset,
            r.model,
            r.variant,
            r.seeds,
            r.diverged,
            r.nrmse_mean,
            r.nrmse_std,
            opt(r.change_percent),
            opt(r.vs_baseline.map(|p| p.mean)),
            opt(r.vs_baseline.map(|p| p.low)),
            opt(r.vs_baseline.map(|p| p.high)),
            r.vpt_mean,
            r.best_epoch_mean,
            r.val_auc_mean,
            r.seconds_mean,
            opt(r.climate.as_ref().and_then(|c| c.lyapunov_mean)),
            opt(r.climate.as_ref().and_then(|c| c.wasserstein_mean)),
            opt(r.climate.as_ref().and_then(|c| c.spectrum_decades_mean))
        ));
    }
    out
}

#[cfg(test)]
mod tests;

//! Tables for `chaoscast compare`: per-cell results (one trained and evaluated run per dataset,
//! model, variant and seed) summarised per dataset, model and variant like the paper's
//! Supplementary Table 7: the median test NRMSE as mean ± standard deviation over seeds, its
//! change against the baseline variant, epochs to the best validation NRMSE and wall time.

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
    /// Training wall time in seconds.
    pub seconds: f64,
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
    /// Mean over seeds of the median test NRMSE.
    pub nrmse_mean: f64,
    /// Its sample standard deviation over seeds (0 for one seed).
    pub nrmse_std: f64,
    /// Change of `nrmse_mean` against the baseline variant of the same dataset and model, in
    /// percent (negative: better); `None` for the baseline itself or without one.
    pub change_percent: Option<f64>,
    /// Mean over seeds of the median valid prediction time, steps.
    pub vpt_mean: f64,
    /// Mean epoch of the best validation NRMSE.
    pub best_epoch_mean: f64,
    /// Mean training wall time per cell, seconds.
    pub seconds_mean: f64,
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
                nrmse_mean,
                nrmse_std,
                change_percent: None,
                vpt_mean: group.iter().map(|c| c.vpt_median_steps).sum::<f64>() / n,
                best_epoch_mean: group.iter().map(|c| c.best_epoch as f64).sum::<f64>() / n,
                seconds_mean: group.iter().map(|c| c.seconds).sum::<f64>() / n,
                dataset,
                model,
                variant,
            }
        })
        .collect();
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
            SummaryRow {
                change_percent,
                ..r.clone()
            }
        })
        .collect()
}

/// The summary as a Markdown table.
pub fn markdown(rows: &[SummaryRow], baseline: &str) -> String {
    let mut out = format!(
        "| dataset | model | variant | seeds | median NRMSE (mean ± std) | vs {baseline} | median VPT (steps) | epochs to best | time per cell |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.4} ± {:.4} | {} | {:.1} | {:.1} | {:.0} s |\n",
            r.dataset,
            r.model,
            r.variant,
            r.seeds,
            r.nrmse_mean,
            r.nrmse_std,
            r.change_percent
                .map(|c| format!("{c:+.1} %"))
                .unwrap_or_else(|| "—".into()),
            r.vpt_mean,
            r.best_epoch_mean,
            r.seconds_mean
        ));
    }
    out
}

/// One line per cell as CSV.
pub fn cells_csv(cells: &[CellResult]) -> String {
    let mut out = String::from(
        "dataset,model,variant,seed,nrmse_median,nrmse_mean,vpt_median_steps,best_epoch,epochs,seconds\n",
    );
    for c in cells {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            c.dataset,
            c.model,
            c.variant,
            c.seed,
            c.nrmse_median,
            c.nrmse_mean,
            c.vpt_median_steps,
            c.best_epoch,
            c.epochs,
            c.seconds
        ));
    }
    out
}

/// The summary as CSV.
pub fn csv(rows: &[SummaryRow]) -> String {
    let mut out = String::from(
        "dataset,model,variant,seeds,nrmse_mean,nrmse_std,change_percent,vpt_mean,best_epoch_mean,seconds_mean\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            r.dataset,
            r.model,
            r.variant,
            r.seeds,
            r.nrmse_mean,
            r.nrmse_std,
            r.change_percent.map(|c| c.to_string()).unwrap_or_default(),
            r.vpt_mean,
            r.best_epoch_mean,
            r.seconds_mean
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(variant: &str, seed: u64, nrmse: f64) -> CellResult {
        CellResult {
            dataset: "thomas".into(),
            model: "lstm".into(),
            variant: variant.into(),
            seed,
            nrmse_median: nrmse,
            nrmse_mean: nrmse,
            vpt_median_steps: 3.0,
            best_epoch: 4 + seed as usize,
            epochs: 10,
            seconds: 100.0,
        }
    }

    #[test]
    fn mean_std_and_change_against_the_baseline() {
        let cells = [
            cell("baseline", 0, 0.5),
            cell("baseline", 1, 0.7),
            cell("bio", 0, 0.45),
            cell("bio", 1, 0.51),
        ];
        let rows = summarise(&cells, "baseline");
        assert_eq!(rows.len(), 2);
        assert!((rows[0].nrmse_mean - 0.6).abs() < 1e-12);
        // Sample standard deviation of (0.5, 0.7): 0.1·√2.
        assert!((rows[0].nrmse_std - 0.141_421_356).abs() < 1e-8);
        assert_eq!(rows[0].change_percent, None);
        // 0.48 against 0.6: −20 %.
        assert!((rows[1].change_percent.unwrap() + 20.0).abs() < 1e-9);
        assert!((rows[1].best_epoch_mean - 4.5).abs() < 1e-12);
        let md = markdown(&rows, "baseline");
        assert!(
            md.contains(
                "| thomas | lstm | bio | 2 | 0.4800 ± 0.0424 | -20.0 % | 3.0 | 4.5 | 100 s |"
            ),
            "{md}"
        );
        assert_eq!(csv(&rows).lines().count(), 3);
    }
}

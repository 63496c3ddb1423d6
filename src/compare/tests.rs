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
        diverged: false,
        val_auc: 2.0 + seed as f64,
        seconds: 100.0,
        climate: None,
    }
}

/// A model whose cells were skipped for a variant (the ESN under a bio variant) gets no bar
/// in that series, where it used to get a bar of height 0 that read as a perfect forecast.
#[test]
#[cfg(feature = "plots")]
fn a_skipped_cell_has_no_bar() {
    let mut esn = cell("baseline", 0, 0.004);
    esn.model = "esn".into();
    let cells = [cell("baseline", 0, 0.5), cell("bio", 0, 0.45), esn];
    let rows = summarise(&cells, "baseline");
    let models = ["lstm".to_string(), "esn".to_string()];
    let variants = ["baseline".to_string(), "bio".to_string()];
    let series = bar_series(&rows, "thomas", &models, &variants);
    assert_eq!(series[0].values, [Some(0.5), Some(0.004)]);
    assert_eq!(series[1].values, [Some(0.45), None]);
    assert_eq!(series[1].errors, [0.0, 0.0]);
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
    assert!((rows[1].val_auc_mean - 2.5).abs() < 1e-12);
    // Paired differences −0.05 and −0.19: mean −0.12, std 0.07·√2, t(1) = 12.706205.
    let p = rows[1].vs_baseline.unwrap();
    let half = 12.706_205 * 0.07 * 2f64.sqrt() / 2f64.sqrt();
    assert_eq!(p.seeds, 2);
    assert!((p.mean + 0.12).abs() < 1e-12);
    assert!((p.low - (-0.12 - half)).abs() < 1e-9 && (p.high - (-0.12 + half)).abs() < 1e-9);
    assert!(!p.significant());
    assert_eq!(rows[0].vs_baseline, None);
    let md = markdown(&rows, "baseline");
    assert!(
        md.contains(
            "| thomas | lstm | bio | 2 | 0.4800 ± 0.0424 | -20.0 % | -0.1200 [-1.0094, +0.7694] | 3.0 | 4.5 | 2.500 | 100 s |"
        ),
        "{md}"
    );
    assert!(
        md.contains("- thomas lstm bio: no significant difference from baseline"),
        "{md}"
    );
    assert_eq!(csv(&rows).lines().count(), 3);
}

#[test]
fn paired_interval_matches_a_hand_computation() {
    // Differences (0.45 − 0.50, 0.58 − 0.60, 0.50 − 0.55) = (−0.05, −0.02, −0.05): mean
    // −0.04, sample std √(0.0006 / 2) = 0.017321, standard error 0.01, t(2) = 4.302653,
    // so the interval is −0.04 ± 0.043027 = [−0.083027, +0.003027]: not significant.
    // Seeds pair by number, not position; seed 9 has no partner and is left out.
    let base = [(0, 0.50), (1, 0.60), (2, 0.55)];
    let variant = [(2, 0.50), (0, 0.45), (1, 0.58), (9, 0.1)];
    let p = paired(&base, &variant).unwrap();
    assert_eq!(p.seeds, 3);
    assert!((p.mean + 0.04).abs() < 1e-12);
    assert!((p.low + 0.083_026_5).abs() < 1e-6, "{p:?}");
    assert!((p.high - 0.003_026_5).abs() < 1e-6, "{p:?}");
    assert!(!p.significant());
    // Consistently lower by 0.05 ± 0.001: significant.
    let better = [(0, 0.451), (1, 0.55), (2, 0.499)];
    let p = paired(&base, &better).unwrap();
    assert!(p.significant() && p.high < 0.0, "{p:?}");
    // One pair, or a diverged cell, gives no interval.
    assert_eq!(paired(&base, &[(0, 0.4)]), None);
    assert_eq!(paired(&base, &[(0, 0.4), (1, f64::INFINITY)]), None);
}

#[test]
fn t_quantiles_match_the_tables() {
    assert!((t_975(1) - 12.706_205).abs() < 1e-6);
    assert!((t_975(4) - 2.776_445).abs() < 1e-6);
    // Beyond the table: t(40) = 2.021075, t(60) = 2.000298, t(120) = 1.979930.
    for (df, t) in [
        (31, 2.039_513),
        (40, 2.021_075),
        (60, 2.000_298),
        (120, 1.979_930),
    ] {
        assert!((t_975(df) - t).abs() < 1e-4, "t({df}) = {}", t_975(df));
    }
}

//! Embed a trained forecaster in a Rust program: load a run folder, feed it the last L rows of a
//! series as plain `f32` rows, and get the next H rows back (or more, autoregressively).
//!
//! ```sh
//! chaoscast generate datasets/thomas.toml -o thomas.parquet
//! chaoscast train --data thomas.parquet --model lstm --epochs 2 -o runs/lstm
//! cargo run --release --example forecast -- runs/lstm thomas.parquet
//! ```

use chaoscast::data::read_dataset;
use chaoscast::forecaster::Forecaster;

fn main() -> chaoscast::Result<()> {
    let mut args = std::env::args().skip(1);
    let run = args.next().unwrap_or_else(|| "runs/lstm".into());
    let data_path = args.next().unwrap_or_else(|| "thomas.parquet".into());

    // The run folder has the model, its config and the training statistics: nothing else needed.
    let forecaster = Forecaster::load(&run)?;
    println!(
        "{run}: reads {} rows of {}, forecasts {} rows",
        forecaster.lookback(),
        forecaster.names().join(", "),
        forecaster.horizon()
    );

    // Any source of rows works; here, the end of a dataset file, held back from the model.
    let data = read_dataset(data_path.as_ref())?;
    let (l, h) = (forecaster.lookback(), forecaster.horizon());
    let columns: Vec<usize> = forecaster
        .names()
        .iter()
        .filter_map(|n| data.names.iter().position(|m| m == n))
        .collect();
    let rows: Vec<Vec<f32>> = (0..data.len())
        .map(|i| columns.iter().map(|&j| data.row(i)[j] as f32).collect())
        .collect();
    let (history, truth) = rows.split_at(rows.len() - h);
    let forecast = forecaster.predict(&history[history.len() - l..])?;

    println!("step  {:>24}  {:>24}", "forecast", "truth");
    for (k, (f, t)) in forecast
        .iter()
        .zip(truth)
        .enumerate()
        .step_by(h.div_ceil(8))
    {
        println!("{:>4}  {:>24}  {:>24}", k + 1, fmt(f), fmt(t));
    }
    let long = forecaster.rollout(history, 3 * h)?;
    println!(
        "an autoregressive rollout of {} rows ends at {}",
        long.len(),
        fmt(&long[long.len() - 1])
    );
    Ok(())
}

fn fmt(row: &[f32]) -> String {
    row.iter()
        .take(3)
        .map(|v| format!("{v:7.3}"))
        .collect::<Vec<_>>()
        .join(" ")
}

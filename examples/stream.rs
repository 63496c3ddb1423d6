//! Embed a trained forecaster in a loop over streaming observations: each new row enters a
//! buffer of the last L rows; once the buffer is full, every row gets a forecast of the next H
//! rows, and the forecast made one row earlier is scored against the row that arrives.
//!
//! ```sh
//! chaoscast generate datasets/thomas.toml -o thomas.parquet
//! chaoscast train --data thomas.parquet --model lstm --epochs 20 -o runs/lstm
//! cargo run --release --example stream -- runs/lstm
//! ```
//!
//! The stream here is a fresh trajectory of the run's own system (its dataset's recipe with
//! another seed), produced up front; a sensor or a simulation would feed the loop the same way.

use std::collections::VecDeque;

use chaoscast::prelude::*;

fn main() -> chaoscast::Result<()> {
    let run = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "runs/lstm".into());
    let forecaster = Forecaster::load(&run)?;
    let (l, h) = (forecaster.lookback(), forecaster.horizon());

    // The stream: the run's recipe, another seed, the run's variables.
    let mut recipe = forecaster.config().data.recipe.clone();
    recipe.seed += 1;
    recipe.samples = l + 400;
    let stream = generate(&recipe, &NoProgress)?.select(forecaster.names())?;

    let mut window: VecDeque<Vec<f32>> = VecDeque::with_capacity(l);
    let mut pending: Option<Vec<Vec<f32>>> = None;
    let (mut squared, mut scored) = (0.0f64, 0usize);
    for i in 0..stream.len() {
        let row: Vec<f32> = stream.row(i).iter().map(|v| *v as f32).collect();
        // Score the one-step-ahead part of the forecast made at the previous row.
        if let Some(forecast) = pending.take() {
            squared += forecast[0]
                .iter()
                .zip(&row)
                .map(|(f, t)| f64::from(f - t).powi(2))
                .sum::<f64>();
            scored += 1;
        }
        if window.len() == l {
            window.pop_front();
        }
        window.push_back(row);
        if window.len() < l {
            continue;
        }
        let history: Vec<&[f32]> = window.iter().map(Vec::as_slice).collect();
        let forecast = match forecaster.predict(&history) {
            Ok(f) => f,
            // A sensor glitch (NaN) skips one forecast instead of ending the loop.
            Err(ForecastError::NonFinite { row, column }) => {
                eprintln!("row {i}: skipped, {column} is not finite (window row {row})");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if (i + 1 - l) % 100 == 0 {
            println!(
                "row {i:>4}: next {h} rows forecast, ending at {:?}; one-step RMSE so far {:.4} over {scored} rows",
                forecast[h - 1],
                (squared / (scored.max(1) * forecaster.vars()) as f64).sqrt()
            );
        }
        pending = Some(forecast);
    }
    println!(
        "{} rows streamed; one-step RMSE {:.4} over {scored} forecasts",
        stream.len(),
        (squared / (scored.max(1) * forecaster.vars()) as f64).sqrt()
    );
    Ok(())
}

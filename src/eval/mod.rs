//! Evaluation: a model's forecasts over a series' windows and the scores training stops on
//! ([`windows`]), and the scoring of a trained run folder that `chaoscast eval`, `compare` and
//! `demo` report ([`report`]).

#[cfg(feature = "plots")]
mod plots;
pub mod report;
pub mod windows;

pub use report::{
    ClimateOptions, EnsembleOptions, EnsembleReport, EvalOptions, Report, evaluate_run,
};

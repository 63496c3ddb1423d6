//! Forecasting models, each `[batch, lookback, vars] → [batch, horizon, vars]`, built from configs
//! with weights drawn from seeded host generators. So far: the LSTM and GRU forecasters with
//! attention ([`recurrent`]) on our own cells ([`cells`]).

pub mod attention;
pub mod cells;
pub mod init;
pub mod recurrent;

pub use recurrent::{CellKind, RecurrentConfig, RecurrentForecaster};

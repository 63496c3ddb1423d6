//! Training: the loop with early stopping ([`trainer`]) over a [`config::TrainConfig`], what it
//! hands its observer ([`state`]), the base optimizer ([`optim`]), sharpness-aware gradients
//! ([`asam`]), the learning-rate schedule ([`schedule`]), resumable checkpoints ([`checkpoint`]),
//! the echo state network's closed-form fit and hyper-parameter search ([`esn`]), and the
//! teacher-forcing strategies of the autoregressive decoder ([`strategy`]).

pub mod asam;
pub mod checkpoint;
pub mod clip;
pub mod config;
pub mod esn;
pub mod optim;
pub mod schedule;
pub mod state;
pub mod strategy;
pub mod trainer;

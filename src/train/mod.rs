//! Training: the loop with early stopping ([`trainer`]), sharpness-aware gradients ([`asam`]),
//! the learning-rate schedule ([`schedule`]), resumable checkpoints ([`checkpoint`]), and the
//! echo state network's closed-form fit and hyper-parameter search ([`esn`]), and the
//! teacher-forcing strategies of the autoregressive decoder ([`strategy`]).

pub mod asam;
pub mod checkpoint;
pub mod clip;
pub mod esn;
pub mod schedule;
pub mod strategy;
pub mod trainer;

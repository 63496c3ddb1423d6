//! Training: the loop with early stopping ([`trainer`]), sharpness-aware gradients ([`asam`]),
//! the learning-rate schedule ([`schedule`]) and resumable checkpoints ([`checkpoint`]).

pub mod asam;
pub mod checkpoint;
pub mod schedule;
pub mod trainer;

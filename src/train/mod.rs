//! Training: sharpness-aware gradients ([`asam`]) and the learning-rate schedule ([`schedule`]).
//! The loop, checkpoints and early stopping are still to come.

pub mod asam;
pub mod schedule;
pub mod trainer;

//! Cosine annealing over the whole run, stepped per optimizer step (SPEC.md §5):
//! lr_t = lr_min + ½·(lr_0 − lr_min)·(1 + cos(π·t / T)), t = 0..T, with no warm restart.

/// The learning rate at step `t` of `total` (clamped to the last step).
pub fn cosine_lr(lr0: f64, lr_min: f64, t: usize, total: usize) -> f64 {
    if total == 0 {
        return lr0;
    }
    let progress = t.min(total) as f64 / total as f64;
    lr_min + 0.5 * (lr0 - lr_min) * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;

    #[test]
    fn starts_halves_and_ends() {
        assert_relative_eq!(cosine_lr(0.1, 0.0, 0, 100), 0.1);
        assert_relative_eq!(cosine_lr(0.1, 0.0, 50, 100), 0.05, epsilon = 1e-15);
        assert_relative_eq!(cosine_lr(0.1, 0.001, 100, 100), 0.001, epsilon = 1e-15);
        assert_relative_eq!(cosine_lr(0.1, 0.0, 150, 100), 0.0, epsilon = 1e-15);
    }
}

//! Learning-rate schedules. Cosine annealing over the whole run, stepped per optimizer step
//! (SPEC.md §5): lr_t = lr_min + ½·(lr_0 − lr_min)·(1 + cos(π·t / T)), t = 0..T, with no warm
//! restart. Or reduce-on-plateau with restarts from the best weights (Vlachas et al., Neural
//! Networks 2020): the rate stays constant until `patience` epochs pass without a better
//! validation NRMSE, then it is multiplied by `factor` (never below lr_min) and training goes on
//! from the best model so far. Both are functions of the step or of the epoch history, so a
//! resumed run repeats the uninterrupted one.

use serde::{Deserialize, Serialize};

/// How the learning rate moves over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LrSchedule {
    /// Cosine annealing per step from the initial rate to lr_min over the run (the default).
    #[default]
    Cosine,
    /// Reduce on plateau, restarting from the best weights.
    Plateau {
        /// The factor a plateau multiplies the rate by, in (0, 1) (default 0.5).
        factor: f64,
        /// Epochs without a better validation NRMSE that make a plateau (default 10).
        patience: usize,
    },
}

impl LrSchedule {
    /// The plateau schedule with its defaults (factor 0.5, patience 10).
    pub fn plateau() -> Self {
        LrSchedule::Plateau {
            factor: 0.5,
            patience: 10,
        }
    }
}

/// Reduce-on-plateau replayed over the validation NRMSEs of the epochs so far (`history`):
/// the rate of the next epoch, and whether that epoch starts from the best weights (a plateau
/// has just ended). A plateau counts the epochs since the best one or since the last reduction,
/// whichever is later.
pub fn plateau_lr(
    history: &[f64],
    lr0: f64,
    lr_min: f64,
    factor: f64,
    patience: usize,
) -> (f64, bool) {
    let (mut lr, mut best, mut stale, mut restart) = (lr0, f64::INFINITY, 0, false);
    for &nrmse in history {
        if nrmse < best {
            best = nrmse;
            stale = 0;
        } else {
            stale += 1;
        }
        restart = stale >= patience;
        if restart {
            lr = (lr * factor).max(lr_min);
            stale = 0;
        }
    }
    (lr, restart)
}

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

    /// Patience 2: epochs 3 and 4 do not beat epoch 2, so epoch 5 runs at half the rate from
    /// the best weights; the count restarts, and two more stale epochs halve it again.
    #[test]
    fn plateaus_halve_the_rate_and_restart_from_the_best() {
        let lr = |h: &[f64]| plateau_lr(h, 1.0, 0.1, 0.5, 2);
        assert_eq!(lr(&[]), (1.0, false));
        assert_eq!(lr(&[0.5, 0.4]), (1.0, false));
        assert_eq!(lr(&[0.5, 0.4, 0.45]), (1.0, false));
        assert_eq!(lr(&[0.5, 0.4, 0.45, 0.41]), (0.5, true));
        assert_eq!(lr(&[0.5, 0.4, 0.45, 0.41, 0.42]), (0.5, false));
        assert_eq!(lr(&[0.5, 0.4, 0.45, 0.41, 0.42, 0.43]), (0.25, true));
        assert_eq!(lr(&[0.5, 0.4, 0.45, 0.41, 0.42, 0.3, 0.5]), (0.5, false));
        // Never below lr_min.
        assert_eq!(lr(&[1.0; 13]).0, 0.1);
    }

    #[test]
    fn starts_halves_and_ends() {
        assert_relative_eq!(cosine_lr(0.1, 0.0, 0, 100), 0.1);
        assert_relative_eq!(cosine_lr(0.1, 0.0, 50, 100), 0.05, epsilon = 1e-15);
        assert_relative_eq!(cosine_lr(0.1, 0.001, 100, 100), 0.001, epsilon = 1e-15);
        assert_relative_eq!(cosine_lr(0.1, 0.0, 150, 100), 0.0, epsilon = 1e-15);
    }
}

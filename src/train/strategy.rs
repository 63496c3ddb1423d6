//! Training strategies of the autoregressive decoder, after Teutsch & Mäder, "Flipped Classroom:
//! Effective Teaching for Time Series Forecasting" (TMLR 2022): teacher forcing (every decoder
//! input is the true value), free running (every input is the model's own forecast), and
//! curricula between them, where the teacher-forcing ratio r — the probability that an input is
//! the truth — changes from epoch to epoch.
//!
//! With epoch index i = epoch − 1 and E epochs, a curriculum moves r from `start` towards `end`
//! along a decay d(i) that falls towards 0 (the schedules of Bengio et al.'s scheduled sampling):
//!
//! ```text
//! r(i) = end + (start − end)·d(i)
//! linear:           d(i) = 1 − i/(E − 1)          (d = 1 when E = 1; reaches end at the last epoch)
//! exponential:      d(i) = kⁱ                      (0 < k < 1, default 0.8; d(0) = 1)
//! inverse sigmoid:  d(i) = k / (k + exp(i/k))      (k ≥ 1, default 3; d(0) = k/(k + 1) = 0.75)
//! ```
//!
//! The exponential and inverse-sigmoid curves approach `end` without reaching it, and the
//! inverse sigmoid starts a quarter of the way there at the default k. The curve is a function of
//! the epoch and the configured epoch count, so a run resumed with more `--epochs` continues a
//! stretched curriculum (as it continues a stretched cosine schedule).
//!
//! A *decreasing* curriculum goes from teacher forcing to free running (start 1, end 0; the
//! classic scheduled sampling), an *increasing* one the other way (start 0, end 1; the "flipped
//! classroom"). The coin is tossed per step (each decoder input of each sequence on its own) or
//! per sequence (one toss decides a whole sequence). Masks come from a seeded host generator.

use burn::prelude::*;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How r changes over the epochs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// r = start throughout.
    Constant,
    /// Linear from start to end over the run.
    Linear,
    /// Exponential decay kⁱ from start towards end.
    Exponential,
    /// Inverse-sigmoid decay k/(k + exp(i/k)) from start towards end.
    InverseSigmoid,
}

/// Whether a toss decides one decoder input or a whole sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sampling {
    /// Every input of every sequence on its own.
    PerStep,
    /// One toss per sequence.
    PerSequence,
}

/// A training strategy of the autoregressive decoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Strategy {
    /// The curve of r over the epochs.
    pub schedule: Schedule,
    /// Where r starts: r(0) = start for the constant, linear and exponential schedules,
    /// end + (start − end)·k/(k + 1) for the inverse sigmoid.
    pub start: f64,
    /// r the curriculum moves towards.
    pub end: f64,
    /// The exponential's base or the inverse sigmoid's k.
    pub k: f64,
    /// Per step or per sequence.
    pub sampling: Sampling,
}

impl Default for Strategy {
    /// The decreasing inverse-sigmoid curriculum (k = 3, per step): the best of the eight on
    /// Thomas's validation split (docs/results/strategies-thomas), far ahead of teacher forcing
    /// and free running alone.
    fn default() -> Self {
        Self::named("decreasing-inverse-sigmoid").expect("a strategy by that name exists")
    }
}

/// Every strategy name [`Strategy::named`] knows.
pub const STRATEGIES: [&str; 8] = [
    "teacher-forcing",
    "free-running",
    "decreasing-linear",
    "decreasing-exponential",
    "decreasing-inverse-sigmoid",
    "increasing-linear",
    "increasing-exponential",
    "increasing-inverse-sigmoid",
];

impl Strategy {
    /// A strategy by name (see [`STRATEGIES`]), sampled per step, with the default k.
    pub fn named(name: &str) -> Result<Self> {
        let constant = |r: f64| Strategy {
            schedule: Schedule::Constant,
            start: r,
            end: r,
            k: 1.0,
            sampling: Sampling::PerStep,
        };
        let curriculum = |schedule: Schedule, start: f64, end: f64| Strategy {
            schedule,
            start,
            end,
            k: match schedule {
                Schedule::Exponential => 0.8,
                Schedule::InverseSigmoid => 3.0,
                _ => 1.0,
            },
            sampling: Sampling::PerStep,
        };
        let (direction, shape) = match name {
            "teacher-forcing" => return Ok(constant(1.0)),
            "free-running" => return Ok(constant(0.0)),
            _ => name.split_once('-').unwrap_or((name, "")),
        };
        let schedule = match shape {
            "linear" => Schedule::Linear,
            "exponential" => Schedule::Exponential,
            "inverse-sigmoid" => Schedule::InverseSigmoid,
            _ => return Err(unknown(name)),
        };
        match direction {
            "decreasing" => Ok(curriculum(schedule, 1.0, 0.0)),
            "increasing" => Ok(curriculum(schedule, 0.0, 1.0)),
            _ => Err(unknown(name)),
        }
    }

    /// Checks the ratios and k.
    pub fn validate(&self) -> Result<()> {
        if matches!(self.schedule, Schedule::Constant | Schedule::Linear) && self.k != 1.0 {
            return Err(Error::config(
                "strategy k",
                "only the exponential and inverse-sigmoid schedules have a k",
            ));
        }
        for (field, r) in [("strategy start", self.start), ("strategy end", self.end)] {
            if !(0.0..=1.0).contains(&r) {
                return Err(Error::config(
                    field,
                    format!("a teacher-forcing ratio lies in [0, 1], got {r}"),
                ));
            }
        }
        let k = self.k;
        match self.schedule {
            Schedule::Exponential if !(k > 0.0 && k < 1.0) => Err(Error::config(
                "strategy k",
                format!("the exponential schedule needs 0 < k < 1, got {k}"),
            )),
            Schedule::InverseSigmoid if !(k >= 1.0 && k.is_finite()) => Err(Error::config(
                "strategy k",
                format!("the inverse-sigmoid schedule needs k ≥ 1, got {k}"),
            )),
            _ => Ok(()),
        }
    }

    /// The teacher-forcing ratio of 1-based `epoch` out of `epochs`.
    pub fn ratio(&self, epoch: usize, epochs: usize) -> f64 {
        let i = epoch.saturating_sub(1) as f64;
        let k = self.k;
        let decay = match self.schedule {
            Schedule::Constant => 1.0,
            Schedule::Linear if epochs <= 1 => 1.0,
            Schedule::Linear => (1.0 - i / (epochs - 1) as f64).max(0.0),
            Schedule::Exponential => k.powf(i),
            Schedule::InverseSigmoid => k / (k + (i / k).exp()),
        };
        self.end + (self.start - self.end) * decay
    }

    /// A mask `[batch, horizon]` for [`crate::models::AutoregressiveRnn::decode`]: 1 where the
    /// decoder input is the truth, each with probability `ratio`.
    pub fn mask<B: Backend>(
        &self,
        ratio: f64,
        batch: usize,
        horizon: usize,
        rng: &mut impl Rng,
        device: &B::Device,
    ) -> Tensor<B, 2> {
        let mut toss = || {
            if rng.random::<f64>() < ratio {
                1.0f32
            } else {
                0.0
            }
        };
        let values: Vec<f32> = match self.sampling {
            Sampling::PerStep => (0..batch * horizon).map(|_| toss()).collect(),
            Sampling::PerSequence => (0..batch)
                .flat_map(|_| std::iter::repeat_n(toss(), horizon))
                .collect(),
        };
        Tensor::from_data(TensorData::new(values, [batch, horizon]), device)
    }
}

fn unknown(name: &str) -> Error {
    Error::config(
        "strategy",
        format!(
            "'{name}' is not a strategy; use one of {}",
            STRATEGIES.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    /// Each schedule's ratio at a few epochs against its formula, worked out by hand.
    #[test]
    fn ratio_curves_follow_their_formulas() {
        let s = |name: &str| Strategy::named(name).unwrap();
        for epoch in [1, 2, 10] {
            assert_eq!(s("teacher-forcing").ratio(epoch, 10), 1.0);
            assert_eq!(s("free-running").ratio(epoch, 10), 0.0);
        }
        // Linear over 5 epochs: 1, 0.75, 0.5, 0.25, 0.
        let lin = s("decreasing-linear");
        for (epoch, r) in [(1, 1.0), (2, 0.75), (3, 0.5), (5, 0.0)] {
            assert!(
                close(lin.ratio(epoch, 5), r),
                "{epoch}: {}",
                lin.ratio(epoch, 5)
            );
        }
        assert!(close(s("increasing-linear").ratio(2, 5), 0.25));
        // Exponential, k = 0.8: 0.8⁰, 0.8¹ = 0.8, 0.8⁴ = 0.4096.
        let exp = s("decreasing-exponential");
        for (epoch, r) in [(1, 1.0), (2, 0.8), (5, 0.4096)] {
            assert!(close(exp.ratio(epoch, 15), r), "{epoch}");
        }
        assert!(close(
            s("increasing-exponential").ratio(5, 15),
            1.0 - 0.4096
        ));
        // Inverse sigmoid, k = 3: 3/(3 + e⁰) = 0.75; 3/(3 + e¹) at i = 3; 3/(3 + e³) at i = 9.
        let inv = s("decreasing-inverse-sigmoid");
        let e = std::f64::consts::E;
        for (epoch, r) in [
            (1, 0.75),
            (4, 3.0 / (3.0 + e)),
            (10, 3.0 / (3.0 + e.powi(3))),
        ] {
            assert!(close(inv.ratio(epoch, 15), r), "{epoch}");
        }
        assert!(close(s("increasing-inverse-sigmoid").ratio(1, 15), 0.25));
    }

    #[test]
    fn names_and_bounds() {
        for name in STRATEGIES {
            Strategy::named(name).unwrap().validate().unwrap();
        }
        assert!(Strategy::named("sideways-linear").is_err());
        assert!(Strategy::named("decreasing-cubic").is_err());
        let mut bad = Strategy::named("decreasing-exponential").unwrap();
        bad.k = 1.5;
        assert!(bad.validate().is_err());
        let mut bad = Strategy::named("decreasing-linear").unwrap();
        bad.k = 0.5;
        assert!(bad.validate().is_err(), "a linear schedule has no k");
        let bad = Strategy {
            start: 1.2,
            ..Strategy::default()
        };
        assert!(bad.validate().is_err());
    }

    /// Masks: all ones at ratio 1, all zeros at 0, about the ratio in between, and constant
    /// along each sequence when sampled per sequence.
    #[test]
    fn masks_follow_the_ratio_and_the_sampling() {
        let device = Default::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut per_step = Strategy::default();
        let values = |m: Tensor<Flex, 2>| m.into_data().to_vec::<f32>().unwrap();
        let ones = values(per_step.mask::<Flex>(1.0, 4, 5, &mut rng, &device));
        assert!(ones.iter().all(|v| *v == 1.0));
        let zeros = values(per_step.mask::<Flex>(0.0, 4, 5, &mut rng, &device));
        assert!(zeros.iter().all(|v| *v == 0.0));
        let some = values(per_step.mask::<Flex>(0.3, 200, 50, &mut rng, &device));
        let share = some.iter().sum::<f32>() / some.len() as f32;
        // 10,000 tosses: the standard error is 0.0046.
        assert!((share - 0.3).abs() < 0.02, "{share}");
        per_step.sampling = Sampling::PerSequence;
        let rows = values(per_step.mask::<Flex>(0.5, 100, 7, &mut rng, &device));
        for row in rows.chunks(7) {
            assert!(row.iter().all(|v| *v == row[0]), "{row:?}");
        }
        let firsts: f32 = rows.chunks(7).map(|r| r[0]).sum();
        assert!(
            firsts > 30.0 && firsts < 70.0,
            "{firsts} of 100 sequences forced"
        );
    }
}

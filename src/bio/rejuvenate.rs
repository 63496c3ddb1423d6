//! Weight rejuvenation: after an optimizer step, per covered weight tensor with m = max|w| and
//! σ = m / d_re, each weight is re-drawn from U(−m, m) with probability erfc(|w| / (σ√2))
//! (two-sided, the authors' code; the paper's one-sided ½·erfc as an option). Small weights are
//! likely to be replaced, large ones almost never. Draws come from a seeded host generator. With
//! `lr_scaled` the probability is multiplied by the step's learning rate over the initial one.

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::RejuvenationConfig;
use super::coverage::Coverage;
use crate::models::Model;

/// The probability that a weight of magnitude `w` is re-drawn when the tensor's largest
/// magnitude is `max`.
pub fn probability(w: f64, max: f64, cfg: &RejuvenationConfig) -> f64 {
    let sigma = max / cfg.distance;
    let p = libm::erfc(w.abs() / (sigma * std::f64::consts::SQRT_2));
    if cfg.one_sided { 0.5 * p } else { p }
}

/// Rejuvenates one tensor's values in place, each with `scale` × its [`probability`]; returns
/// how many were re-drawn.
pub fn rejuvenate_values(
    values: &mut [f32],
    cfg: &RejuvenationConfig,
    scale: f64,
    rng: &mut ChaCha8Rng,
) -> usize {
    let max = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if max == 0.0 || !max.is_finite() {
        return 0;
    }
    let max = f64::from(max);
    let mut count = 0;
    for v in values.iter_mut() {
        let p = scale * probability(f64::from(*v), max, cfg);
        if rng.random::<f64>() < p {
            *v = rng.random_range(-max..=max) as f32;
            count += 1;
        }
    }
    count
}

/// Rejuvenates every covered weight of `model`, each with `scale` × its [`probability`] (1 for
/// the paper's rejuvenation, lr/lr₀ for `lr_scaled`); returns the model and the count re-drawn.
pub fn rejuvenate_model<B: AutodiffBackend>(
    model: Model<B>,
    coverage: &Coverage,
    cfg: &RejuvenationConfig,
    scale: f64,
    rng: &mut ChaCha8Rng,
) -> (Model<B>, usize) {
    let mut walk = Rejuvenate {
        coverage,
        cfg,
        scale,
        rng,
        count: 0,
    };
    let model = model.map(&mut walk);
    let count = walk.count;
    (model, count)
}

struct Rejuvenate<'a> {
    coverage: &'a Coverage,
    cfg: &'a RejuvenationConfig,
    scale: f64,
    rng: &'a mut ChaCha8Rng,
    count: usize,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Rejuvenate<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, w, mapper) = param.consume();
        if !self.coverage.weights.contains(&id) {
            return Param::from_mapped_value(id, w, mapper);
        }
        let dims = w.dims();
        let device = w.device();
        let Ok(mut values) = w
            .clone()
            .inner()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
        else {
            return Param::from_mapped_value(id, w, mapper);
        };
        let n = rejuvenate_values(&mut values, self.cfg, self.scale, self.rng);
        if n == 0 {
            return Param::from_mapped_value(id, w, mapper);
        }
        self.count += n;
        let fresh =
            Tensor::<B, D>::from_data(TensorData::new(values, dims), &device).require_grad();
        Param::from_mapped_value(id, fresh, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// On a large uniformly spread tensor the re-drawn fraction matches the expected fraction
    /// (the probability integrated over the values) within 3 standard errors, for two distances
    /// and both variants; new values stay within ±max|w|.
    #[test]
    fn rejuvenated_fraction_matches_the_integral() {
        let n = 200_000;
        for (distance, one_sided) in [(6.0, false), (14.0, false), (8.0, true)] {
            let cfg = RejuvenationConfig {
                distance,
                one_sided,
                every: 1,
                lr_scaled: false,
            };
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let mut values: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..=1.0)).collect();
            values[0] = 1.0;
            let max = 1.0;
            let expected: f64 = values
                .iter()
                .map(|v| probability(f64::from(*v), max, &cfg))
                .sum::<f64>()
                / n as f64;
            let before = values.clone();
            let count =
                rejuvenate_values(&mut values, &cfg, 1.0, &mut ChaCha8Rng::seed_from_u64(2));
            let fraction = count as f64 / n as f64;
            let se = (expected * (1.0 - expected) / n as f64).sqrt();
            assert!(
                (fraction - expected).abs() < 3.0 * se,
                "d_re {distance}, one-sided {one_sided}: {fraction} vs {expected} ± {se}"
            );
            assert!(values.iter().all(|v| v.abs() <= 1.0));
            let changed = values.iter().zip(&before).filter(|(a, b)| a != b).count();
            assert!(changed <= count);
            let mut again = before.clone();
            let count2 =
                rejuvenate_values(&mut again, &cfg, 1.0, &mut ChaCha8Rng::seed_from_u64(2));
            assert_eq!((count2, &again), (count, &values), "same seed, same result");
            // A quarter of the probability re-draws about a quarter as many; none at 0.
            let mut quarter = before.clone();
            let count4 =
                rejuvenate_values(&mut quarter, &cfg, 0.25, &mut ChaCha8Rng::seed_from_u64(2));
            let se4 = (expected / 4.0 * (1.0 - expected / 4.0) / n as f64).sqrt();
            assert!(
                (count4 as f64 / n as f64 - expected / 4.0).abs() < 3.0 * se4,
                "scale 1/4: {count4} of {n}, expected {}",
                expected / 4.0
            );
            let mut none = before.clone();
            assert_eq!(
                rejuvenate_values(&mut none, &cfg, 0.0, &mut ChaCha8Rng::seed_from_u64(2)),
                0
            );
            assert_eq!(none, before);
        }
        // The analytic value for a uniform tensor at d_re = 8, two-sided: ∫₀¹ erfc(8x/√2) dx ≈ 0.0997.
        let cfg = RejuvenationConfig {
            distance: 8.0,
            one_sided: false,
            every: 1,
            lr_scaled: false,
        };
        let integral: f64 = (0..100_000)
            .map(|i| probability((i as f64 + 0.5) / 100_000.0, 1.0, &cfg))
            .sum::<f64>()
            / 100_000.0;
        assert!((integral - 0.0997).abs() < 1e-3, "{integral}");
    }
}

//! Fuzzy learning rates: one fixed factor per weight element, drawn once from a seeded host
//! generator, never trained, kept in checkpoints, multiplied into the weight gradients every step
//! before the optimizer (with ASAM: into the gradient taken at the perturbed point), or, with
//! [`FuzzyTarget::Update`](super::FuzzyTarget::Update), into each weight's step after the
//! optimizer ([`scale_updates`]), which survives Adam's per-element normalisation.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::coverage::Coverage;
use super::{FuzzyConfig, FuzzyDistribution};
use crate::error::{Error, Result};
use crate::models::Model;

/// The factors of every covered weight tensor, on the host.
#[derive(Clone, Debug, PartialEq)]
pub struct FuzzyFactors {
    /// (parameter, its factors in row-major order), in the model's visiting order.
    pub factors: Vec<(ParamId, Vec<f32>)>,
}

impl FuzzyFactors {
    /// Draws the factors of `model`'s covered weights from a generator seeded by `seed`.
    pub fn draw<B: Backend>(
        model: &Model<B>,
        coverage: &Coverage,
        cfg: &FuzzyConfig,
        seed: u64,
    ) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(0xf1);
        let mut walk = Draw {
            coverage,
            cfg,
            rng,
            out: Vec::new(),
        };
        model.visit(&mut walk);
        Self { factors: walk.out }
    }

    /// One factor per element of a tensor of `len` elements.
    pub fn sample(cfg: &FuzzyConfig, len: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        let nu = cfg.spread;
        (0..len)
            .map(|_| {
                let f = match cfg.distribution {
                    FuzzyDistribution::Uniform => rng.random_range(1.0 - nu..=1.0 + nu),
                    FuzzyDistribution::Normal => {
                        (1.0 + nu * rng.sample::<f64, _>(StandardNormal)).max(0.0)
                    }
                    FuzzyDistribution::LogNormal => {
                        (nu * rng.sample::<f64, _>(StandardNormal)).exp()
                    }
                };
                f as f32
            })
            .collect()
    }

    /// The factors as device tensors, to scale gradients with.
    pub fn to_device<B: AutodiffBackend>(
        &self,
        device: &B::Device,
    ) -> HashMap<ParamId, Tensor<B::InnerBackend, 1>> {
        self.factors
            .iter()
            .map(|(id, f)| {
                (
                    *id,
                    Tensor::from_data(TensorData::new(f.clone(), [f.len()]), device),
                )
            })
            .collect()
    }

    /// Bytes for a checkpoint: per tensor, its id and length (u64 little endian), then the
    /// factors (f32 little endian).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (id, f) in &self.factors {
            out.extend_from_slice(&id.val().to_le_bytes());
            out.extend_from_slice(&(f.len() as u64).to_le_bytes());
            for v in f {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    /// Reads [`Self::to_bytes`] back.
    pub fn from_bytes(mut bytes: &[u8]) -> Result<Self> {
        let bad = || {
            Error::config(
                "checkpoint",
                "its fuzzy learning-rate factors are truncated",
            )
        };
        let mut factors = Vec::new();
        while !bytes.is_empty() {
            let (id, rest) = bytes.split_first_chunk::<8>().ok_or_else(bad)?;
            let (len, rest) = rest.split_first_chunk::<8>().ok_or_else(bad)?;
            let len = usize::try_from(u64::from_le_bytes(*len)).map_err(|_| bad())?;
            let size = len.checked_mul(4).ok_or_else(bad)?;
            if rest.len() < size {
                return Err(bad());
            }
            let values = rest[..size]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            factors.push((ParamId::from(u64::from_le_bytes(*id)), values));
            bytes = &rest[size..];
        }
        Ok(Self { factors })
    }
}

struct Draw<'a> {
    coverage: &'a Coverage,
    cfg: &'a FuzzyConfig,
    rng: ChaCha8Rng,
    out: Vec<(ParamId, Vec<f32>)>,
}

impl<B: Backend> ModuleVisitor<B> for Draw<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.coverage.weights.contains(&param.id) {
            let len = param.val().shape().num_elements();
            let f = FuzzyFactors::sample(self.cfg, len, &mut self.rng);
            self.out.push((param.id, f));
        }
    }
}

/// Multiplies the gradient of every parameter that has factors by them, elementwise.
pub fn scale_gradients<B: AutodiffBackend>(
    model: &Model<B>,
    factors: &HashMap<ParamId, Tensor<B::InnerBackend, 1>>,
    grads: GradientsParams,
) -> GradientsParams {
    let mut walk = Scale {
        factors,
        grads: Some(grads),
    };
    model.visit(&mut walk);
    walk.grads.expect("the gradients stay in the walk")
}

struct Scale<'a, B: AutodiffBackend> {
    factors: &'a HashMap<ParamId, Tensor<B::InnerBackend, 1>>,
    grads: Option<GradientsParams>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(f) = self.factors.get(&param.id) else {
            return;
        };
        let grads = self.grads.as_mut().expect("the gradients stay in the walk");
        if let Some(g) = grads.remove::<B::InnerBackend, D>(param.id) {
            let dims = g.dims();
            grads.register(param.id, g * f.clone().reshape(dims));
        }
    }
}

/// The weights that have factors, flattened, as they stand before an optimizer step: what
/// [`scale_updates`] measures the step from.
pub fn weights_before_step<B: AutodiffBackend>(
    model: &Model<B>,
    factors: &HashMap<ParamId, Tensor<B::InnerBackend, 1>>,
) -> HashMap<ParamId, Tensor<B::InnerBackend, 1>> {
    let mut walk = Keep {
        factors,
        out: HashMap::new(),
    };
    model.visit(&mut walk);
    walk.out
}

struct Keep<'a, B: AutodiffBackend> {
    factors: &'a HashMap<ParamId, Tensor<B::InnerBackend, 1>>,
    out: HashMap<ParamId, Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Keep<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.factors.contains_key(&param.id) {
            let w = param.val().inner();
            let len = w.shape().num_elements();
            self.out.insert(param.id, w.reshape([len]));
        }
    }
}

/// Scales each factored weight's step by its factors: w ← w₀ + f ⊙ (w − w₀), with w₀ from
/// [`weights_before_step`] and w the optimizer's result. Other parameters keep their step.
pub fn scale_updates<B: AutodiffBackend>(
    model: Model<B>,
    before: &HashMap<ParamId, Tensor<B::InnerBackend, 1>>,
    factors: &HashMap<ParamId, Tensor<B::InnerBackend, 1>>,
) -> Model<B> {
    model.map(&mut ScaleStep { before, factors })
}

struct ScaleStep<'a, B: AutodiffBackend> {
    before: &'a HashMap<ParamId, Tensor<B::InnerBackend, 1>>,
    factors: &'a HashMap<ParamId, Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for ScaleStep<'_, B> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, w, mapper) = param.consume();
        let (Some(w0), Some(f)) = (self.before.get(&id), self.factors.get(&id)) else {
            return Param::from_mapped_value(id, w, mapper);
        };
        let dims = w.dims();
        let w0 = w0.clone().reshape(dims);
        let stepped = w0.clone() + (w.inner() - w0) * f.clone().reshape(dims);
        Param::from_mapped_value(id, Tensor::from_inner(stepped).require_grad(), mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bio::Scope;
    use crate::models::{CellKind, ModelConfig, RecurrentConfig};
    use burn::backend::{Autodiff, Flex};

    type A = Autodiff<Flex>;

    #[test]
    fn factors_are_bounded_centred_and_survive_bytes() {
        let cfg = FuzzyConfig::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let f = FuzzyFactors::sample(&cfg, 100_000, &mut rng);
        assert!(f.iter().all(|v| (0.5..=1.5).contains(v)));
        let mean = f.iter().map(|v| f64::from(*v)).sum::<f64>() / f.len() as f64;
        // U(0.5, 1.5): standard error of the mean 0.289/√1e5 ≈ 0.0009.
        assert!((mean - 1.0).abs() < 0.003, "{mean}");
        for distribution in [FuzzyDistribution::Normal, FuzzyDistribution::LogNormal] {
            let cfg = FuzzyConfig {
                spread: 0.1,
                distribution,
                ..FuzzyConfig::default()
            };
            let f = FuzzyFactors::sample(&cfg, 50_000, &mut rng);
            assert!(f.iter().all(|v| *v >= 0.0));
            let mean = f.iter().map(|v| f64::from(*v)).sum::<f64>() / f.len() as f64;
            assert!((mean - 1.0).abs() < 0.01, "{distribution:?}: {mean}");
        }
        let model =
            ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Gru, 2, 3).with_hidden(4))
                .init::<Flex>(&Default::default())
                .unwrap();
        let cov = Coverage::of(&model, Scope::All);
        let drawn = FuzzyFactors::draw(&model, &cov, &FuzzyConfig::default(), 9);
        assert_eq!(drawn.factors.len(), cov.weights.len());
        assert_eq!(FuzzyFactors::from_bytes(&drawn.to_bytes()).unwrap(), drawn);
        assert_eq!(
            FuzzyFactors::draw(&model, &cov, &FuzzyConfig::default(), 9),
            drawn
        );
        assert!(FuzzyFactors::from_bytes(&drawn.to_bytes()[..20]).is_err());
    }

    /// Every covered weight's gradient becomes exactly raw × factor; biases and uncovered
    /// parameters keep theirs.
    #[test]
    fn scaled_gradients_equal_raw_times_factors() {
        let device = Default::default();
        let model =
            ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Lstm, 2, 3).with_hidden(4))
                .init::<A>(&device)
                .unwrap();
        let cov = Coverage::of(&model, Scope::All);
        let factors = FuzzyFactors::draw(&model, &cov, &FuzzyConfig::default(), 1);
        let x = Tensor::<A, 3>::ones([2, 5, 2], &device);
        let grads_of = || {
            GradientsParams::from_grads(model.forward(x.clone()).square().mean().backward(), &model)
        };
        let scaled = scale_gradients(&model, &factors.to_device::<A>(&device), grads_of());
        let raw = grads_of();
        struct Compare<'a> {
            raw: &'a GradientsParams,
            scaled: &'a GradientsParams,
            factors: HashMap<ParamId, Vec<f32>>,
            checked: (usize, usize),
        }
        impl ModuleVisitor<A> for Compare<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
                let get = |g: &GradientsParams| {
                    g.get::<Flex, D>(param.id)
                        .unwrap()
                        .into_data()
                        .to_vec::<f32>()
                        .unwrap()
                };
                let (raw, scaled) = (get(self.raw), get(self.scaled));
                match self.factors.get(&param.id) {
                    Some(f) => {
                        let expected: Vec<f32> = raw.iter().zip(f).map(|(g, f)| g * f).collect();
                        assert_eq!(scaled, expected);
                        self.checked.0 += 1;
                    }
                    None => {
                        assert_eq!(scaled, raw);
                        self.checked.1 += 1;
                    }
                }
            }
        }
        let mut cmp = Compare {
            raw: &raw,
            scaled: &scaled,
            factors: factors.factors.iter().cloned().collect(),
            checked: (0, 0),
        };
        model.visit(&mut cmp);
        // Weights: LSTM input and recurrent, query, key, value, head; untouched: 5 biases.
        assert_eq!(cmp.checked, (6, 5));
    }
}

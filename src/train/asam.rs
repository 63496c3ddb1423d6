//! Sharpness-aware gradients: ASAM (Kwon et al., ICML 2021), plain SAM (Foret et al., ICLR 2021),
//! or none (SPEC.md §5).
//!
//! With T = |w| + η on weight tensors (rank ≥ 2) and T = 1 on biases and other vectors, ASAM
//! perturbs every parameter by ε = ρ·T²·g / ‖T·g‖₂ (one norm over all parameters), takes the
//! gradient at w + ε, and hands it to the base optimizer, which applies it to the unperturbed w.
//! SAM is the same with T = 1. A step therefore costs two forward and backward passes.

use burn::module::{AutodiffModule, ModuleMapper, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

/// Which sharpness-aware scheme a step uses.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Sharpness {
    /// Plain gradients.
    None,
    /// SAM with radius `rho`.
    Sam {
        /// Neighbourhood radius ρ.
        rho: f64,
    },
    /// Adaptive SAM with radius `rho` and offset `eta` (defaults 1.0 and 0.01).
    Asam {
        /// Neighbourhood radius ρ.
        rho: f64,
        /// Offset η in T = |w| + η.
        eta: f64,
    },
}

impl Default for Sharpness {
    /// ASAM with ρ = 1, η = 0.01 (SPEC.md §5).
    fn default() -> Self {
        Sharpness::Asam {
            rho: 1.0,
            eta: 0.01,
        }
    }
}

/// The loss at the current weights and the gradients to apply: at the perturbed point for SAM
/// and ASAM, at the current point otherwise. `loss` maps a model to a scalar loss tensor.
pub fn gradients<B, M, F>(model: &M, sharpness: Sharpness, loss: F) -> (f64, GradientsParams)
where
    B: AutodiffBackend,
    M: AutodiffModule<B>,
    F: Fn(&M) -> Tensor<B, 1>,
{
    let first = loss(model);
    let value = first.clone().into_scalar().elem::<f64>();
    let grads = GradientsParams::from_grads(first.backward(), model);
    let (rho, eta) = match sharpness {
        Sharpness::None => return (value, grads),
        Sharpness::Sam { rho } => (rho, None),
        Sharpness::Asam { rho, eta } => (rho, Some(eta)),
    };
    let mut norm = ScaledNorm {
        grads: &grads,
        eta,
        sum: 0.0,
    };
    model.visit(&mut norm);
    let scale = rho / (norm.sum.sqrt() + 1e-12);
    let perturbed = model.clone().map(&mut Perturb {
        grads: &grads,
        eta,
        scale,
    });
    let second = loss(&perturbed);
    (
        value,
        GradientsParams::from_grads(second.backward(), &perturbed),
    )
}

/// T for a parameter: |w| + η on weight tensors (rank ≥ 2) under ASAM, else 1.
fn scale_of<B: Backend, const D: usize>(w: Tensor<B, D>, eta: Option<f64>) -> Option<Tensor<B, D>> {
    match eta {
        Some(eta) if D >= 2 => Some(w.abs().add_scalar(eta)),
        _ => None,
    }
}

/// Accumulates ‖T·g‖₂² over all parameters.
struct ScaledNorm<'a> {
    grads: &'a GradientsParams,
    eta: Option<f64>,
    sum: f64,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for ScaledNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) else {
            return;
        };
        let tg = match scale_of(param.val().inner(), self.eta) {
            Some(t) => t * g,
            None => g,
        };
        self.sum += tg.square().sum().into_scalar().elem::<f64>();
    }
}

/// Moves every parameter to w + ε, ε = scale·T²·g, as a fresh leaf with the same id.
struct Perturb<'a> {
    grads: &'a GradientsParams,
    eta: Option<f64>,
    scale: f64,
}

impl<B: AutodiffBackend> ModuleMapper<B> for Perturb<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, w, mapper) = param.consume();
        let Some(g) = self.grads.get::<B::InnerBackend, D>(id) else {
            return Param::from_mapped_value(id, w, mapper);
        };
        let inner = w.inner();
        let step = match scale_of(inner.clone(), self.eta) {
            Some(t) => t.square() * g,
            None => g,
        };
        let moved = Tensor::from_inner(inner + step.mul_scalar(self.scale)).require_grad();
        Param::from_mapped_value(id, moved, mapper)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};

    type A = Autodiff<Flex>;

    /// A weight matrix w (1×2) and a bias b (1) under the loss ½(w₁² + w₂² + b²), so g = (w, b)
    /// and the gradient at any point is that point.
    #[derive(Module, Debug)]
    struct Quadratic<B: Backend> {
        w: Param<Tensor<B, 2>>,
        b: Param<Tensor<B, 1>>,
    }

    fn quadratic() -> Quadratic<A> {
        let device = Default::default();
        Quadratic {
            w: Param::from_data(TensorData::new(vec![1.0f32, -2.0], [1, 2]), &device),
            b: Param::from_data(TensorData::new(vec![0.5f32], [1]), &device),
        }
    }

    fn loss(m: &Quadratic<A>) -> Tensor<A, 1> {
        (m.w.val().square().sum() + m.b.val().square().sum()).mul_scalar(0.5)
    }

    fn grads_of(m: &Quadratic<A>, g: &GradientsParams) -> Vec<f32> {
        let w = g
            .get::<Flex, 2>(m.w.id)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let b = g
            .get::<Flex, 1>(m.b.id)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        [w, b].concat()
    }

    /// Hand computation at w = (1, −2), b = 0.5, ρ = 1, η = 0.01:
    /// T = (1.01, 2.01, 1), T·g = (1.01, −4.02, 0.5), ‖T·g‖ = √17.4305 = 4.174985,
    /// ε = T²·g/‖T·g‖ = (1.0201, −8.0802, 0.5)/4.174985 = (0.244336, −1.935384, 0.119761),
    /// and the gradient at w + ε is w + ε = (1.244336, −3.935384, 0.619761).
    #[test]
    fn asam_step_on_a_quadratic_by_hand() {
        let m = quadratic();
        let (value, g) = gradients(
            &m,
            Sharpness::Asam {
                rho: 1.0,
                eta: 0.01,
            },
            loss,
        );
        assert!((value - 0.5 * (1.0 + 4.0 + 0.25)).abs() < 1e-6);
        let got = grads_of(&m, &g);
        for (a, b) in got.iter().zip([1.244336f32, -3.935384, 0.619761]) {
            assert!((a - b).abs() < 1e-5, "{got:?}");
        }
    }

    /// SAM: ε = ρ·g/‖g‖ = (1, −2, 0.5)/2.291288, gradient (1.436436, −2.872872, 0.718218).
    #[test]
    fn sam_and_plain_steps_by_hand() {
        let m = quadratic();
        let (_, g) = gradients(&m, Sharpness::Sam { rho: 1.0 }, loss);
        let got = grads_of(&m, &g);
        for (a, b) in got.iter().zip([1.436436f32, -2.872872, 0.718218]) {
            assert!((a - b).abs() < 1e-5, "{got:?}");
        }
        let (_, g) = gradients(&m, Sharpness::None, loss);
        assert_eq!(grads_of(&m, &g), vec![1.0, -2.0, 0.5]);
    }
}

//! Gradient-norm clipping over all parameters at once (PyTorch's `clip_grad_norm_`): when the
//! joint L2 norm ‖g‖ = sqrt(Σ over every parameter of Σ g²) exceeds `max`, every gradient is
//! multiplied by max / (‖g‖ + 1e-6), so the direction of the step is kept. Burn's own
//! `GradientClipping::Norm` clips each tensor on its own, which changes the direction; the
//! training loop applies this one after the fuzzy learning-rate factors, before the optimizer.

use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// The joint L2 norm of `model`'s gradients in `grads`.
pub fn gradient_norm<B: AutodiffBackend, M: Module<B>>(model: &M, grads: &GradientsParams) -> f64 {
    struct Norm<'a> {
        grads: &'a GradientsParams,
        sum: f64,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Norm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
                self.sum += g.square().sum().into_scalar().elem::<f64>();
            }
        }
    }
    let mut norm = Norm { grads, sum: 0.0 };
    model.visit(&mut norm);
    norm.sum.sqrt()
}

/// `grads` scaled so that their joint norm is at most `max`, and the norm before clipping.
pub fn clip_gradients<B: AutodiffBackend, M: Module<B>>(
    model: &M,
    grads: GradientsParams,
    max: f64,
) -> (GradientsParams, f64) {
    struct Scale {
        grads: GradientsParams,
        factor: f64,
    }
    impl<B: AutodiffBackend> ModuleVisitor<B> for Scale {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
                self.grads.register(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    let norm = gradient_norm(model, &grads);
    if norm.is_nan() || norm <= max {
        return (grads, norm);
    }
    let mut scale = Scale {
        grads,
        factor: max / (norm + 1e-6),
    };
    model.visit(&mut scale);
    (scale.grads, norm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, Flex};
    use burn::nn::{Linear, LinearConfig};

    type A = Autodiff<Flex>;

    /// A linear layer 2 → 1 with weights w and bias b under the loss Σ(w·x + b) at x = (3, 4):
    /// the gradients are (3, 4) for w and 1 for b, a joint norm of sqrt(26).
    fn layer_and_grads() -> (Linear<A>, GradientsParams) {
        let device = Default::default();
        let layer: Linear<A> = LinearConfig::new(2, 1).init(&device);
        let x = Tensor::<A, 2>::from_data(TensorData::new(vec![3.0f32, 4.0], [1, 2]), &device);
        let grads = layer.forward(x).sum().backward();
        let grads = GradientsParams::from_grads(grads, &layer);
        (layer, grads)
    }

    fn values(layer: &Linear<A>, grads: &GradientsParams) -> Vec<f32> {
        let w = grads
            .get::<Flex, 2>(layer.weight.id)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        let b = grads
            .get::<Flex, 1>(layer.bias.as_ref().unwrap().id)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        [w, b].concat()
    }

    #[test]
    fn the_norm_spans_every_parameter() {
        let (layer, grads) = layer_and_grads();
        assert!((gradient_norm(&layer, &grads) - 26f64.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn clipping_keeps_the_direction_and_caps_the_norm() {
        let (layer, grads) = layer_and_grads();
        let (clipped, before) = clip_gradients(&layer, grads, 1.0);
        assert!((before - 26f64.sqrt()).abs() < 1e-6);
        let got = values(&layer, &clipped);
        let scale = 1.0 / (26f64.sqrt() + 1e-6);
        for (g, want) in got.iter().zip([3.0, 4.0, 1.0]) {
            assert!((f64::from(*g) - want * scale).abs() < 1e-6, "{got:?}");
        }
        assert!((gradient_norm(&layer, &clipped) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn gradients_under_the_limit_are_left_alone() {
        let (layer, grads) = layer_and_grads();
        let (kept, _) = clip_gradients(&layer, grads, 10.0);
        assert_eq!(values(&layer, &kept), [3.0, 4.0, 1.0]);
    }
}

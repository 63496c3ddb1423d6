//! Helpers of the models' tests: random tensors and parameters, every parameter's gradient, and
//! the comparison of a fused operation's outputs with its reference's.

use burn::module::{ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A tensor of `shape` with entries drawn from U(−scale, scale).
pub(crate) fn random<B: Backend, const D: usize>(
    rng: &mut ChaCha8Rng,
    shape: [usize; D],
    scale: f32,
) -> Tensor<B, D> {
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..scale)).collect();
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// Makes every parameter random, U(−scale, scale) — the biases and norm shifts too, which start
/// at zero and would hide a wrong gradient — keeping the ids, and tracked.
pub(crate) struct Randomise {
    rng: ChaCha8Rng,
    scale: f32,
}

impl Randomise {
    /// Draws from a generator seeded with `seed`.
    pub(crate) fn new(seed: u64, scale: f32) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            scale,
        }
    }
}

impl<B: Backend> ModuleMapper<B> for Randomise {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let shape: [usize; D] = p.val().dims();
        let t = random::<B, D>(&mut self.rng, shape, self.scale);
        Param::initialized(p.id, t.require_grad())
    }
}

/// Every parameter's gradient in `module`'s visiting order.
pub(crate) fn param_grads<B: AutodiffBackend, M: Module<B>>(
    module: &M,
    grads: &B::Gradients,
) -> Vec<Vec<f32>> {
    struct Grads<'a, B: AutodiffBackend>(&'a B::Gradients, Vec<Vec<f32>>);

    impl<B: AutodiffBackend> ModuleVisitor<B> for Grads<'_, B> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            let g = p
                .val()
                .grad(self.0)
                .expect("every parameter has a gradient");
            self.1.push(g.into_data().to_vec().unwrap());
        }
    }

    let mut visitor = Grads::<B>(grads, Vec::new());
    module.visit(&mut visitor);
    visitor.1
}

/// `a` (a fused operation's) equals `b` (the reference's) element by element, within a small
/// part of `b`'s largest magnitude (float noise of sums), a relative part, and `floor` (for
/// gradients that are zero but for rounding, like a key bias's: the softmax does not see a
/// shift of a whole row of scores).
pub(crate) fn assert_close(what: &str, a: &[f32], b: &[f32], floor: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-3);
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 2e-6 * scale + 2e-5 * y.abs() + floor,
            "{what}[{i}]: fused {x} vs reference {y} (scale {scale})"
        );
    }
}

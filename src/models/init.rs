//! Parameter initialisation from seeded host generators (SPEC.md §5): every random weight comes
//! from a ChaCha8 stream, never from the backend's RNG, so a seed gives the same model on CPU and
//! CUDA. Biases start at zero (SPEC.md §4).

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// A parameter of `shape` with entries drawn from U(−bound, bound).
pub fn uniform<B: Backend, const D: usize>(
    rng: &mut ChaCha8Rng,
    shape: [usize; D],
    bound: f64,
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|_| rng.random_range(-bound..bound) as f32)
        .collect();
    Param::from_data(TensorData::new(values, shape), device)
}

/// A zero parameter of `shape`.
pub fn zeros<B: Backend, const D: usize>(
    shape: [usize; D],
    device: &B::Device,
) -> Param<Tensor<B, D>> {
    Param::from_tensor(Tensor::zeros(shape, device))
}

/// A `Linear` layer (`[d_in, d_out]` weight) with PyTorch's default bound 1/√d_in and a zero bias.
pub fn linear<B: Backend>(
    rng: &mut ChaCha8Rng,
    d_in: usize,
    d_out: usize,
    device: &B::Device,
) -> Linear<B> {
    Linear {
        weight: uniform(rng, [d_in, d_out], 1.0 / (d_in as f64).sqrt(), device),
        bias: Some(zeros([d_out], device)),
    }
}

/// Replaces every weight of a module — rank-2 `[fan_in, fan_out]` (Linear) and rank-3
/// `[out, in, kernel]` (Conv1d) parameters — with U(−1/√fan_in, 1/√fan_in) draws from a seeded
/// host generator, keeping parameter ids; rank-1 parameters (biases, norm scales and shifts) are
/// kept as built. Build Burn layers with a `Zeros` initializer and map them through this, so that
/// biases are zero and no backend RNG is used.
pub struct HostInit<'a> {
    /// The generator the weights are drawn from.
    pub rng: &'a mut ChaCha8Rng,
}

impl<B: Backend> burn::module::ModuleMapper<B> for HostInit<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let shape = param.shape().to_vec();
        let fan_in = match D {
            2 => shape[0],
            3 => shape[1] * shape[2],
            _ => return param,
        };
        let device = param.device();
        let id = param.id;
        let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
        let values: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| self.rng.random_range(-bound..bound) as f32)
            .collect();
        let tensor = Tensor::<B, D>::from_data(TensorData::new(values, shape), &device);
        Param::initialized(id, tensor.require_grad())
    }
}

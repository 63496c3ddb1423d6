use super::*;
use burn::backend::{Autodiff, Flex};
use burn::nn::transformer::{TransformerEncoderConfig, TransformerEncoderInput};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::models::testing::{Randomise, assert_close, param_grads, random};

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

/// Every parameter random (biases and layer-norm shifts too).
fn encoder<B: Backend>(d: EncoderLayerOp, layers: usize, seed: u64) -> TransformerEncoder<B> {
    TransformerEncoderConfig::new(d.width, d.ff, d.heads, layers)
        .with_dropout(0.0)
        .init::<B>(&Default::default())
        .map(&mut Randomise::new(seed, 0.6))
}

/// The fused layer agrees with Burn's on random inputs, parameters and output gradients:
/// the output, and the gradients of the input and of every parameter, through two stacked
/// layers; without autodiff too.
#[test]
fn fused_layers_match_burns_forward_and_gradients() {
    type A = Autodiff<Flex>;
    let shapes = [
        // batch, steps, width, heads, ff
        (5, 7, 8, 2, 12),
        (3, 1, 6, 3, 4),
        (2, 15, 32, 4, 64),
    ];
    for threads in [1, 2, 3] {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool")
            .install(|| {
                for (batch, steps, width, heads, ff) in shapes {
                    let d = EncoderLayerOp {
                        batch,
                        steps,
                        width,
                        heads,
                        ff,
                    };
                    let what = format!("{d:?}, {threads} threads");
                    let enc = encoder::<A>(d, 2, 3);
                    let mut rng = ChaCha8Rng::seed_from_u64(5);
                    let x = random::<A, 3>(&mut rng, [batch, steps, width], 1.5).require_grad();
                    let weight = random::<A, 3>(&mut rng, [batch, steps, width], 1.0);
                    let run = |fused: bool| {
                        let y = if fused {
                            forward(&enc, x.clone())
                        } else {
                            enc.forward(TransformerEncoderInput::new(x.clone()))
                        };
                        let grads = (y.clone() * weight.clone()).sum().backward();
                        let mut out = vec![values(y), values(x.grad(&grads).unwrap())];
                        out.extend(param_grads(&enc, &grads));
                        out
                    };
                    let (fused, reference) = (run(true), run(false));
                    assert_eq!(fused.len(), 2 + 2 * (PARENTS - 1));
                    for (i, (a, b)) in fused.iter().zip(&reference).enumerate() {
                        assert_close(&format!("{what}: tensor {i}"), a, b, 1e-6);
                    }
                    let plain = encoder::<Flex>(d, 2, 3);
                    let x = x.inner();
                    assert_close(
                        &format!("{what}: without autodiff"),
                        &values(forward(&plain, x.clone())),
                        &values(plain.forward(TransformerEncoderInput::new(x))),
                        1e-6,
                    );
                }
            });
    }
}

/// The fused path is taken on the CPU backends for the forecaster's layers (so the test
/// above compares the host kernels with Burn, not Burn with itself), and not for layers it
/// does not cover or an empty batch; and its layer norm ε is the one the forecaster's
/// encoder is built with.
#[test]
fn the_fused_path_covers_the_forecasters_layers_only() {
    let d = EncoderLayerOp {
        batch: 2,
        steps: 3,
        width: 4,
        heads: 2,
        ff: 8,
    };
    let x = || Tensor::<Flex, 3>::ones([2, 3, 4], &Default::default());
    let enc = encoder::<Flex>(d, 1, 0);
    assert!(fused(&enc.layers[0], x()).is_some());
    let ad = encoder::<Autodiff<Flex>>(d, 1, 0);
    assert!(fused(&ad.layers[0], Tensor::ones([2, 3, 4], &Default::default())).is_some());
    let mut other = TransformerEncoderConfig::new(4, 8, 2, 1)
        .with_dropout(0.0)
        .with_norm_first(true)
        .init::<Flex>(&Default::default());
    assert!(fused(&other.layers[0], x()).is_none(), "pre-norm");
    other = TransformerEncoderConfig::new(4, 8, 2, 1)
        .with_dropout(0.1)
        .init::<Flex>(&Default::default());
    assert!(fused(&other.layers[0], x()).is_none(), "dropout");
    let empty = Tensor::<Flex, 3>::zeros([0, 3, 4], &Default::default());
    assert!(fused(&enc.layers[0], empty).is_none(), "an empty batch");
    let eps = TransformerEncoderConfig::new(4, 8, 2, 1).layer_norm_eps;
    assert_eq!(eps as f32, LAYER_NORM_EPS);
}

//! Models and sharpness-aware training together: each model overfits a tiny fixed dataset.

use burn::backend::{Autodiff, Flex};
use burn::optim::momentum::MomentumConfig;
use burn::optim::{Optimizer, SgdConfig};
use burn::prelude::*;
use chaoscast::models::{
    CellKind, FdnConfig, Model, ModelConfig, RecurrentConfig, TransformerConfig,
};
use chaoscast::train::asam::{Sharpness, gradients};

type A = Autodiff<Flex>;

const LOOKBACK: usize = 12;
const HORIZON: usize = 3;
const VARS: usize = 2;
const WINDOWS: usize = 16;

/// 16 windows of two phase-shifted sines: inputs [16, 12, 2], targets [16, 3, 2].
fn tiny_dataset(device: &burn::backend::flex::FlexDevice) -> (Tensor<A, 3>, Tensor<A, 3>) {
    let series = |t: usize, v: usize| ((t as f32) * 0.4 + v as f32 * 1.3).sin();
    let mut x = Vec::new();
    let mut y = Vec::new();
    for w in 0..WINDOWS {
        for t in 0..LOOKBACK {
            x.extend((0..VARS).map(|v| series(w + t, v)));
        }
        for t in LOOKBACK..LOOKBACK + HORIZON {
            y.extend((0..VARS).map(|v| series(w + t, v)));
        }
    }
    (
        Tensor::from_data(TensorData::new(x, [WINDOWS, LOOKBACK, VARS]), device),
        Tensor::from_data(TensorData::new(y, [WINDOWS, HORIZON, VARS]), device),
    )
}

fn mse(model: &Model<A>, x: &Tensor<A, 3>, y: &Tensor<A, 3>) -> Tensor<A, 1> {
    (model.forward(x.clone()) - y.clone()).square().mean()
}

#[test]
fn every_model_overfits_a_tiny_dataset_with_asam_and_sgd() {
    let device = Default::default();
    let (x, y) = tiny_dataset(&device);
    let configs = [
        ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Lstm, VARS, HORIZON).with_hidden(16)),
        ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Gru, VARS, HORIZON).with_hidden(16)),
        ModelConfig::Fdn(FdnConfig::new(VARS, LOOKBACK, HORIZON).with_channels(8)),
        ModelConfig::Transformer(
            TransformerConfig::new(VARS, HORIZON)
                .with_d_model(16)
                .with_d_ff(32),
        ),
    ];
    for cfg in configs {
        let mut model = cfg.init::<A>(&device).unwrap();
        // SPEC.md section 5's optimizer: momentum 0.9 without dampening, weight decay 5e-4.
        let mut optim = SgdConfig::new()
            .with_momentum(Some(
                MomentumConfig::new().with_momentum(0.9).with_dampening(0.0),
            ))
            .init::<A, Model<A>>();
        let first = mse(&model, &x, &y).into_scalar().elem::<f64>();
        let mut last = first;
        for _ in 0..300 {
            let (value, grads) = gradients(&model, Sharpness::default(), |m| mse(m, &x, &y));
            last = value;
            model = optim.step(0.05, model, grads);
        }
        assert!(
            last.is_finite() && last < first / 10.0,
            "{}: {first} -> {last}",
            cfg.name()
        );
    }
}

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

fn thomas(samples: usize) -> chaoscast::data::Dataset {
    use chaoscast::prelude::*;
    let mut spec = RecipeSpec::for_system(SystemName::Thomas);
    spec.samples = Some(samples);
    generate(&spec.resolve().unwrap(), &NoProgress).unwrap()
}

#[test]
fn training_loop_learns_and_keeps_the_best_epoch() {
    use chaoscast::train::trainer::{Silent, TrainConfig, train};
    let data = thomas(2000);
    let model = ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Lstm, 3, 10).with_hidden(16));
    let mut cfg = TrainConfig::new(model);
    cfg.lookback = 30;
    cfg.batch_size = 64;
    cfg.epochs = 6;
    let outcome = train::<A>(&cfg, &data, &Default::default(), &mut Silent).unwrap();
    let h = &outcome.history;
    assert_eq!(h.len(), 6);
    assert!(h[5].train_loss < h[0].train_loss / 2.0, "{h:?}");
    assert!(h[5].val_nrmse < h[0].val_nrmse, "{h:?}");
    let best = h.iter().map(|m| m.val_nrmse).fold(f64::INFINITY, f64::min);
    assert_eq!(h[outcome.best_epoch - 1].val_nrmse, best);
}

#[test]
fn a_diverging_run_stops_naming_epoch_and_step() {
    use chaoscast::train::trainer::{Silent, TrainConfig, train};
    let data = thomas(600);
    let model = ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Gru, 3, 5).with_hidden(8));
    let mut cfg = TrainConfig::new(model);
    cfg.lookback = 20;
    cfg.batch_size = 32;
    cfg.lr = 1e12;
    let err = train::<A>(&cfg, &data, &Default::default(), &mut Silent)
        .err()
        .expect("a learning rate of 1e12 should diverge");
    let text = err.to_string();
    assert!(
        text.contains("training loss became non-finite at epoch 1, step"),
        "{text}"
    );
}

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

/// A trained model's bits do not depend on the number of threads: the fused operations cut the
/// batch into the same chunks on any machine, so a run reproduces on any core count. Every
/// model (the recurrent ones with the attention head and with the autoregressive decoder), one
/// epoch on 1, 2 and 3 threads, then forecasts of batches of 1, 37 and 300 windows.
#[test]
fn training_gives_the_same_bits_on_any_number_of_threads() {
    use chaoscast::models::Decoder;
    use chaoscast::train::trainer::{Silent, TrainConfig, train};
    let data = thomas(500);
    let models = [
        ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Lstm, 3, 5).with_hidden(24)),
        ModelConfig::Recurrent(
            RecurrentConfig::new(CellKind::Gru, 3, 5)
                .with_hidden(24)
                .with_decoder(Some(Decoder::Autoregressive)),
        ),
        ModelConfig::Fdn(FdnConfig::new(3, 20, 5).with_channels(8)),
        ModelConfig::Transformer(TransformerConfig::new(3, 5).with_d_model(16).with_d_ff(32)),
    ];
    for model in models {
        let name = model.name();
        let mut cfg = TrainConfig::new(model);
        cfg.lookback = 20;
        cfg.batch_size = 37;
        cfg.epochs = 1;
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool")
                .install(|| {
                    let outcome = train::<A>(&cfg, &data, &Default::default(), &mut Silent);
                    let model = outcome.unwrap().best;
                    let mut forecasts = Vec::new();
                    for batch in [1, 37, 300] {
                        let x = (0..batch * 20 * 3)
                            .map(|i| (i as f32 * 0.37).sin())
                            .collect::<Vec<_>>();
                        let x = Tensor::<A, 3>::from_data(
                            TensorData::new(x, [batch, 20, 3]),
                            &Default::default(),
                        );
                        forecasts.extend(model.forward(x).into_data().to_vec::<f32>().unwrap());
                    }
                    (weights(&model), forecasts)
                })
        };
        let bits = |w: &[f32]| w.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let (weights_1, forecasts_1) = on(1);
        for threads in [2, 3] {
            let (weights, forecasts) = on(threads);
            assert!(
                bits(&weights) == bits(&weights_1),
                "{name}: the weights after one epoch on {threads} threads differ from 1 thread's"
            );
            assert!(
                bits(&forecasts) == bits(&forecasts_1),
                "{name}: the forecasts on {threads} threads differ from 1 thread's"
            );
        }
    }
}

/// Stops a run with an error after `stop_after` epochs, keeping the state of every epoch.
struct Recorder {
    stop_after: usize,
    states: Vec<chaoscast::train::trainer::TrainState<A>>,
}

impl chaoscast::train::trainer::Observer<A> for Recorder {
    fn epoch_done(
        &mut self,
        state: &chaoscast::train::trainer::TrainState<A>,
        _epochs: usize,
        _improved: bool,
    ) -> chaoscast::Result<()> {
        self.states.push(state.clone());
        if state.epoch() >= self.stop_after {
            return Err(chaoscast::Error::config("test", "interrupted on purpose"));
        }
        Ok(())
    }
}

/// Every parameter value, in visiting order.
fn weights(model: &Model<A>) -> Vec<f32> {
    use burn::module::{Module, ModuleVisitor, Param};
    struct All(Vec<f32>);
    impl ModuleVisitor<A> for All {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<A, D>>) {
            self.0
                .extend(param.val().into_data().to_vec::<f32>().unwrap());
        }
    }
    let mut all = All(Vec::new());
    model.visit(&mut all);
    all.0
}

fn resume_config(
    optimizer: chaoscast::train::trainer::OptimizerKind,
) -> chaoscast::train::trainer::TrainConfig {
    let model = ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Lstm, 3, 5).with_hidden(8));
    let mut cfg = chaoscast::train::trainer::TrainConfig::new(model);
    cfg.lookback = 20;
    cfg.batch_size = 32;
    cfg.epochs = 4;
    cfg.optimizer = optimizer;
    cfg.seed = 7;
    cfg
}

/// A run interrupted after epoch 2, checkpointed to bytes and resumed, ends with the same weights,
/// best epoch and history as the uninterrupted run (SGD with momentum and Adam, ASAM; and with
/// all three bio mechanisms, whose factors and draws must survive the checkpoint).
#[test]
fn resuming_from_a_checkpoint_repeats_the_uninterrupted_run() {
    use chaoscast::train::checkpoint;
    use chaoscast::train::trainer::{OptimizerKind, Silent, resume, train};
    let data = thomas(500);
    let device = Default::default();
    let bio = chaoscast::bio::BioConfig::preset(chaoscast::bio::BioPreset::PaperDefault);
    for (optimizer, bio) in [
        (OptimizerKind::Sgd, Default::default()),
        (OptimizerKind::Adam, Default::default()),
        (OptimizerKind::Sgd, bio),
    ] {
        let mut cfg = resume_config(optimizer);
        cfg.bio = bio;
        let full = train::<A>(&cfg, &data, &device, &mut Silent).unwrap();

        let mut first = Recorder {
            stop_after: 2,
            states: Vec::new(),
        };
        let err = train::<A>(&cfg, &data, &device, &mut first).err().unwrap();
        assert!(err.to_string().contains("interrupted on purpose"));
        let bytes = checkpoint::encode(first.states.last().unwrap(), &cfg).unwrap();
        let state = checkpoint::decode::<A>(&bytes, &cfg, &device).unwrap();
        assert_eq!(state.epoch(), 2);
        let mut second = Recorder {
            stop_after: usize::MAX,
            states: Vec::new(),
        };
        let resumed = resume::<A>(&cfg, &data, &device, &mut second, state).unwrap();

        assert_eq!(second.states.len(), 2, "{optimizer:?}: epochs 3 and 4 ran");
        assert_eq!(
            weights(&second.states.last().unwrap().model),
            weights(&first_full_model(&cfg, &data)),
            "{optimizer:?}: final weights differ"
        );
        assert_eq!(weights(&resumed.best), weights(&full.best), "{optimizer:?}");
        assert_eq!(resumed.best_epoch, full.best_epoch);
        let nrmse = |h: &[chaoscast::train::trainer::EpochMetrics]| {
            h.iter()
                .map(|m| (m.train_loss, m.val_nrmse))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            nrmse(&resumed.history),
            nrmse(&full.history),
            "{optimizer:?}"
        );
    }
}

/// The final (not best) model of an uninterrupted run.
fn first_full_model(
    cfg: &chaoscast::train::trainer::TrainConfig,
    data: &chaoscast::data::Dataset,
) -> Model<A> {
    let mut all = Recorder {
        stop_after: usize::MAX,
        states: Vec::new(),
    };
    chaoscast::train::trainer::train::<A>(cfg, data, &Default::default(), &mut all).unwrap();
    all.states.pop().unwrap().model
}

/// Trains `cfg`, interrupted after epoch `stop_after`, checkpoints its last state to bytes and
/// resumes from them to the end; returns the interrupted run's states and the resumed run's final
/// (not best) model.
fn interrupted_and_resumed(
    cfg: &chaoscast::train::trainer::TrainConfig,
    data: &chaoscast::data::Dataset,
    stop_after: usize,
) -> (Vec<chaoscast::train::trainer::TrainState<A>>, Model<A>) {
    use chaoscast::train::checkpoint;
    use chaoscast::train::trainer::{resume, train};
    let device = Default::default();
    let mut first = Recorder {
        stop_after,
        states: Vec::new(),
    };
    train::<A>(cfg, data, &device, &mut first).err().unwrap();
    let bytes = checkpoint::encode(first.states.last().unwrap(), cfg).unwrap();
    let state = checkpoint::decode::<A>(&bytes, cfg, &device).unwrap();
    let mut second = Recorder {
        stop_after: usize::MAX,
        states: Vec::new(),
    };
    resume::<A>(cfg, data, &device, &mut second, state).unwrap();
    (first.states, second.states.pop().unwrap().model)
}

#[test]
fn damaged_or_mismatched_checkpoints_are_clear_errors() {
    use chaoscast::train::checkpoint;
    use chaoscast::train::trainer::{OptimizerKind, train};
    let data = thomas(400);
    let device = Default::default();
    let mut cfg = resume_config(OptimizerKind::Sgd);
    cfg.epochs = 1;
    let mut rec = Recorder {
        stop_after: usize::MAX,
        states: Vec::new(),
    };
    train::<A>(&cfg, &data, &device, &mut rec).unwrap();
    let bytes = checkpoint::encode(rec.states.last().unwrap(), &cfg).unwrap();
    let err = |bytes: &[u8], cfg: &chaoscast::train::trainer::TrainConfig| {
        checkpoint::decode::<A>(bytes, cfg, &device)
            .err()
            .expect("decoding should fail")
            .to_string()
    };

    let truncated = err(&bytes[..bytes.len() / 2], &cfg);
    assert!(
        truncated.contains("damaged") && truncated.contains("ends inside"),
        "{truncated}"
    );
    let foreign = err(b"PAR1 not a checkpoint", &cfg);
    assert!(foreign.contains("checkpoint marker"), "{foreign}");
    let mut flipped = bytes.clone();
    let last = flipped.len() - 10;
    flipped[last..].fill(0xff);
    assert!(err(&flipped, &cfg).contains("damaged"));

    let mut other = cfg.clone();
    other.model =
        ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Lstm, 3, 5).with_hidden(16));
    assert!(err(&bytes, &other).contains("another model"));
    let mut adam = cfg.clone();
    adam.optimizer = OptimizerKind::Adam;
    assert!(err(&bytes, &adam).contains("another optimizer"));
}

/// A record of another size loads into nothing: `load_checked` compares every shape.
#[test]
fn a_model_record_of_another_size_is_refused() {
    use burn::module::Module;
    let device = Default::default();
    let small = ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Gru, 3, 5).with_hidden(8));
    let large = ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Gru, 3, 5).with_hidden(12));
    let record = large.init::<A>(&device).unwrap().into_record();
    let err = small
        .init::<A>(&device)
        .unwrap()
        .load_checked(record, "model")
        .expect_err("shapes differ")
        .to_string();
    assert!(err.contains("parameter shapes of the model"), "{err}");
}

/// The run folder kept from format 1 still loads: its model forecasts what it forecast when it
/// was written, and its checkpoint decodes with its history.
#[test]
fn a_run_folder_of_format_1_still_loads() {
    use chaoscast::data::store::read_table;
    let run = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-v1");
    let f = chaoscast::forecaster::Forecaster::load(&run).unwrap();
    let history = read_table(&run.join("history.csv")).unwrap();
    let got = f
        .predict(
            &history
                .rows_of(f.names(), &run.join("history.csv"))
                .unwrap(),
        )
        .unwrap();
    let expected = read_table(&run.join("expected.csv")).unwrap();
    let expected = expected
        .rows_of(f.names(), &run.join("expected.csv"))
        .unwrap();
    assert_eq!(got.len(), 3);
    for (a, b) in got.iter().flatten().zip(expected.iter().flatten()) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
    }
    let cfg = chaoscast::run::RunConfig::load(&run).unwrap();
    let state =
        chaoscast::run::load_checkpoint::<A>(&cfg.train, &run, &Default::default()).unwrap();
    assert_eq!(state.epoch(), 2);
    assert_eq!(state.normalizer, cfg.normalizer);
}

/// `lr_scaled` rejuvenation anneals with the cosine schedule: over four epochs it re-draws about
/// as many weights as the paper's full-strength rejuvenation in the first epoch and far fewer in
/// the last, where the learning rate is near zero.
#[test]
fn lr_scaled_rejuvenation_follows_the_learning_rate() {
    use chaoscast::bio::{BioConfig, RejuvenationConfig};
    use chaoscast::train::trainer::{OptimizerKind, TrainConfig, train};
    let data = thomas(400);
    let device = Default::default();
    let mut counts = Vec::new();
    for lr_scaled in [false, true] {
        let model =
            ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Gru, 3, 5).with_hidden(8));
        let mut cfg = TrainConfig::new(model);
        cfg.lookback = 20;
        cfg.batch_size = 32;
        cfg.epochs = 4;
        cfg.patience = 4;
        cfg.optimizer = OptimizerKind::Adam;
        cfg.lr = 1e-3;
        cfg.bio = BioConfig {
            rejuvenation: Some(RejuvenationConfig {
                distance: 6.0,
                lr_scaled,
                ..RejuvenationConfig::default()
            }),
            ..BioConfig::default()
        };
        let mut rec = Recorder {
            stop_after: usize::MAX,
            states: Vec::new(),
        };
        train::<A>(&cfg, &data, &device, &mut rec).unwrap();
        let last = rec.states.last().unwrap();
        counts.push(
            last.history
                .iter()
                .map(|m| m.rejuvenated)
                .collect::<Vec<_>>(),
        );
    }
    let (full, scaled) = (&counts[0], &counts[1]);
    assert_eq!((full.len(), scaled.len()), (4, 4));
    // Epoch 1's mean rate is about 0.96 lr₀, epoch 4's about 0.04 lr₀.
    assert!(
        scaled[0] as f64 > 0.7 * full[0] as f64,
        "{full:?} {scaled:?}"
    );
    assert!(scaled[3] * 5 < full[3], "{full:?} {scaled:?}");
    assert!(scaled.windows(2).all(|w| w[1] < w[0]), "{scaled:?}");
}

/// Every model trains with the `paper-default` bio preset (FL ν = 0.09, WR d_re = 14, WS Γ = 2):
/// weights are rejuvenated, the factors are kept, and the run differs from the baseline with the
/// same seed.
#[test]
fn every_model_trains_with_paper_default_bio() {
    use chaoscast::bio::{BioConfig, BioPreset};
    use chaoscast::train::trainer::{OptimizerKind, TrainConfig, train};
    let data = thomas(400);
    let device = Default::default();
    let configs = [
        ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Lstm, 3, 5).with_hidden(8)),
        ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Gru, 3, 5).with_hidden(8)),
        ModelConfig::Fdn(FdnConfig::new(3, 20, 5).with_channels(4)),
        ModelConfig::Transformer(
            TransformerConfig::new(3, 5)
                .with_d_model(8)
                .with_d_ff(16)
                .with_patch(5),
        ),
        // The autoregressive decoders, with ASAM and a curriculum (SPEC: the bio mechanisms
        // and ASAM work in this mode too).
        ModelConfig::Recurrent(
            RecurrentConfig::new(CellKind::Lstm, 3, 5)
                .with_hidden(8)
                .with_decoder(Some(chaoscast::models::Decoder::Autoregressive)),
        ),
        ModelConfig::Transformer(
            TransformerConfig::new(3, 5)
                .with_d_model(8)
                .with_d_ff(16)
                .with_patch(5)
                .with_decoder(Some(chaoscast::models::Decoder::Autoregressive)),
        ),
    ];
    for model in configs {
        let autoregressive = model.is_autoregressive();
        let mut cfg = TrainConfig::new(model);
        if autoregressive {
            cfg.strategy =
                chaoscast::train::strategy::Strategy::named("decreasing-inverse-sigmoid").unwrap();
        }
        cfg.lookback = 20;
        cfg.batch_size = 64;
        cfg.epochs = 1;
        cfg.optimizer = OptimizerKind::Adam;
        cfg.lr = 1e-3;
        let name = cfg.model.name();
        let mut base = Recorder {
            stop_after: usize::MAX,
            states: Vec::new(),
        };
        train::<A>(&cfg, &data, &device, &mut base).unwrap();
        cfg.bio = BioConfig::preset(BioPreset::PaperDefault);
        let mut bio = Recorder {
            stop_after: usize::MAX,
            states: Vec::new(),
        };
        train::<A>(&cfg, &data, &device, &mut bio).unwrap();
        let (b, s) = (&base.states[0], &bio.states[0]);
        assert_eq!(b.history[0].rejuvenated, 0, "{name}");
        assert!(s.history[0].rejuvenated > 0, "{name}: nothing rejuvenated");
        assert!(s.history[0].train_loss.is_finite(), "{name}");
        let fuzzy = s.fuzzy.as_ref().expect("FL factors are kept in the state");
        assert!(!fuzzy.factors.is_empty(), "{name}");
        assert!(
            fuzzy
                .factors
                .iter()
                .flat_map(|(_, f)| f)
                .all(|f| (0.91..=1.09).contains(f)),
            "{name}"
        );
        assert_ne!(weights(&b.model), weights(&s.model), "{name}");
    }
}

/// The default recipe of the recurrent models, shrunk to a test's size: the autoregressive GRU
/// taught one step ahead over the whole window with input noise and gradient clipping.
fn one_step_config(epochs: usize) -> chaoscast::train::trainer::TrainConfig {
    use chaoscast::models::{ModelKind, Preset};
    let mut cfg =
        chaoscast::train::trainer::TrainConfig::preset(ModelKind::Gru, Preset::Default, 3, 30, 10);
    if let ModelConfig::Recurrent(c) = &mut cfg.model {
        c.hidden = 16;
    }
    cfg.epochs = epochs;
    cfg.seed = 3;
    cfg
}

/// The default recipe learns the one-step map well enough that its closed-loop forecast over
/// the horizon (what validation scores) ends well below its first epoch's error and below
/// persistence on the same windows.
#[test]
fn the_one_step_window_recipe_learns_a_closed_loop_forecast() {
    use chaoscast::train::trainer::{Silent, train};
    let data = thomas(3000);
    let mut cfg = one_step_config(15);
    cfg.stride = 1;
    assert!(cfg.window_loss && cfg.input_noise > 0.0 && cfg.clip_grad == Some(1.0));
    assert!(cfg.model.is_autoregressive());
    let outcome = train::<A>(&cfg, &data, &Default::default(), &mut Silent).unwrap();
    let h = &outcome.history;
    let best = h[outcome.best_epoch - 1].val_nrmse;
    let persistence = {
        use chaoscast::data::window::{SplitFractions, chronological_windows};
        let sets =
            chronological_windows(data.len(), cfg.windows(), SplitFractions::default()).unwrap();
        let norm =
            chaoscast::train::trainer::training_normalizer(&data, Default::default()).unwrap();
        chaoscast::metrics::persistence(
            &data.values,
            &sets.val,
            cfg.windows(),
            &norm.std,
            0.4,
            None,
        )
        .unwrap()
        .nrmse_median
    };
    assert!(
        best < h[0].val_nrmse / 2.0 && best < persistence / 2.0,
        "best {best}, first {}, persistence {persistence}: {h:?}",
        h[0].val_nrmse
    );
}

/// Input noise comes from the seeded host generator: the same config trains the same run, and
/// noise changes it.
#[test]
fn input_noise_is_seeded() {
    use chaoscast::train::trainer::{Silent, train};
    let data = thomas(800);
    let device = Default::default();
    let cfg = one_step_config(1);
    let a = train::<A>(&cfg, &data, &device, &mut Silent).unwrap();
    let b = train::<A>(&cfg, &data, &device, &mut Silent).unwrap();
    assert_eq!(weights(&a.best), weights(&b.best));
    let mut quiet = cfg.clone();
    quiet.input_noise = 0.0;
    let c = train::<A>(&quiet, &data, &device, &mut Silent).unwrap();
    assert_ne!(weights(&a.best), weights(&c.best));
}

/// Closed-loop fine-tuning (the last epoch free running with bounded backpropagation) resumes
/// like every other run: interrupted before it and resumed, the run ends with the weights of the
/// uninterrupted one; and the fine-tuning epoch trains other weights than a one-step epoch.
#[test]
fn closed_loop_fine_tuning_resumes_exactly() {
    use chaoscast::train::trainer::ClosedLoop;
    let data = thomas(800);
    let mut cfg = one_step_config(3);
    cfg.closed_loop = Some(ClosedLoop { epochs: 1, bptt: 4 });
    let full = first_full_model(&cfg, &data);
    let (_, resumed) = interrupted_and_resumed(&cfg, &data, 2);
    assert_eq!(weights(&resumed), weights(&full));
    let mut plain = cfg.clone();
    plain.closed_loop = None;
    assert_ne!(weights(&first_full_model(&plain, &data)), weights(&full));
}

/// The autoregressive FDN (one-step head, sliding window) trains under teacher forcing, which
/// for a sliding window scores the first step only, and its closed-loop forecast improves.
#[test]
fn the_autoregressive_fdn_trains_one_step() {
    use chaoscast::models::Decoder;
    use chaoscast::train::strategy::Strategy;
    use chaoscast::train::trainer::{OptimizerKind, Silent, TrainConfig, train};
    let data = thomas(1500);
    let model = ModelConfig::Fdn(
        FdnConfig::new(3, 20, 5)
            .with_channels(8)
            .with_decoder(Some(Decoder::Autoregressive)),
    );
    let mut cfg = TrainConfig::new(model);
    cfg.lookback = 20;
    cfg.batch_size = 64;
    cfg.epochs = 6;
    cfg.optimizer = OptimizerKind::Adam;
    cfg.lr = 3e-3;
    cfg.weight_decay = 0.0;
    cfg.sharpness = Sharpness::None;
    cfg.strategy = Strategy::named("teacher-forcing").unwrap();
    let outcome = train::<A>(&cfg, &data, &Default::default(), &mut Silent).unwrap();
    let h = &outcome.history;
    assert!(h[5].train_loss < h[0].train_loss / 3.0, "{h:?}");
    assert!(
        h[outcome.best_epoch - 1].val_nrmse < h[0].val_nrmse,
        "{h:?}"
    );
}

/// Settings that a model cannot honour are refused by the config, with the field named.
#[test]
fn settings_the_model_cannot_honour_are_refused() {
    use chaoscast::train::trainer::{ClosedLoop, TrainConfig};
    let direct = ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Gru, 3, 5).with_hidden(8));
    let fdn = ModelConfig::Fdn(FdnConfig::new(3, 20, 5).with_channels(4));
    let mut cfg = TrainConfig::new(fdn);
    cfg.lookback = 20;
    cfg.window_loss = true;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("window_loss")
    );
    let mut cfg = TrainConfig::new(direct);
    cfg.closed_loop = Some(ClosedLoop { epochs: 1, bptt: 2 });
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("closed_loop")
    );
    let mut cfg = one_step_config(2);
    cfg.closed_loop = Some(ClosedLoop { epochs: 3, bptt: 2 });
    assert!(cfg.validate().unwrap_err().to_string().contains("exceed"));
    let mut cfg = one_step_config(2);
    cfg.clip_grad = Some(0.0);
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("clip_grad")
    );
    let mut cfg = one_step_config(2);
    cfg.input_noise = -0.1;
    assert!(
        cfg.validate()
            .unwrap_err()
            .to_string()
            .contains("input_noise")
    );
}

/// The plateau schedule: each epoch's rate is the one its history asks for (constant within the
/// epoch), and a run interrupted and resumed ends with the uninterrupted run's weights.
#[test]
fn the_plateau_schedule_follows_the_history_and_resumes_exactly() {
    use chaoscast::train::schedule::{LrSchedule, plateau_lr};
    let data = thomas(800);
    let mut cfg = one_step_config(5);
    cfg.schedule = LrSchedule::Plateau {
        factor: 0.5,
        patience: 1,
    };
    let full = first_full_model(&cfg, &data);
    let (first, resumed) = interrupted_and_resumed(&cfg, &data, 3);
    let history = &first.last().unwrap().history;
    assert_eq!(history.len(), 3);
    for e in 0..history.len() {
        let before: Vec<f64> = history[..e].iter().map(|m| m.val_nrmse).collect();
        let (lr, _) = plateau_lr(&before, cfg.lr, cfg.lr_min, 0.5, 1);
        assert_eq!(history[e].lr, lr, "epoch {}", e + 1);
    }
    assert_eq!(weights(&resumed), weights(&full));
}

/// Fuzzy factors on the step (`FuzzyTarget::Update`) are a per-weight learning rate under any
/// optimizer. Under SGD with momentum (no weight decay, no clipping) the gradient form is the
/// same thing, so the two runs agree to rounding; under Adam the gradient form all but cancels
/// (Adam divides each element's step by the root of its own squared-gradient average), so it
/// stays next to the baseline while the step form moves far from it.
#[test]
fn fuzzy_factors_on_the_step_act_under_adam_and_equal_the_gradient_form_under_sgd() {
    use chaoscast::bio::{BioConfig, FuzzyConfig, FuzzyTarget};
    use chaoscast::train::trainer::{OptimizerKind, TrainConfig};
    let data = thomas(400);
    let run = |optimizer: OptimizerKind, target: Option<FuzzyTarget>| {
        let model =
            ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Lstm, 3, 5).with_hidden(8));
        let mut cfg = TrainConfig::new(model);
        cfg.lookback = 20;
        cfg.batch_size = 32;
        cfg.epochs = 2;
        cfg.sharpness = Sharpness::None;
        cfg.clip_grad = None;
        cfg.weight_decay = 0.0;
        cfg.optimizer = optimizer;
        cfg.lr = match optimizer {
            OptimizerKind::Sgd => 0.05,
            OptimizerKind::Adam => 3e-3,
        };
        cfg.bio = BioConfig {
            fuzzy_lr: target.map(|target| FuzzyConfig {
                spread: 0.5,
                target,
                ..FuzzyConfig::default()
            }),
            ..BioConfig::default()
        };
        weights(&first_full_model(&cfg, &data))
    };
    // The root-mean-square difference of all parameters.
    let distance = |a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len());
        let sum: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
        (sum / a.len() as f64).sqrt()
    };
    for optimizer in [OptimizerKind::Sgd, OptimizerKind::Adam] {
        let base = run(optimizer, None);
        let on_gradient = run(optimizer, Some(FuzzyTarget::Gradient));
        let on_step = run(optimizer, Some(FuzzyTarget::Update));
        let (gradient_moved, step_moved, forms_apart) = (
            distance(&base, &on_gradient),
            distance(&base, &on_step),
            distance(&on_gradient, &on_step),
        );
        let what = format!(
            "{optimizer:?}: |gradient − base| {gradient_moved:e}, |step − base| {step_moved:e}, \
             |gradient − step| {forms_apart:e}"
        );
        eprintln!("{what}");
        assert!(step_moved > 1e-3, "{what}");
        match optimizer {
            OptimizerKind::Sgd => assert!(forms_apart < step_moved / 1000.0, "{what}"),
            // A fixed factor survives Adam only through ε (a few weights with tiny gradients).
            OptimizerKind::Adam => assert!(gradient_moved < step_moved / 20.0, "{what}"),
        }
    }
}

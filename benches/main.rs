//! The one benchmark binary (each extra binary relinks Burn): criterion groups by area.
//!
//! `cargo bench --bench main -- generate` runs the generation group, `-- limit` one two-scale
//! Lorenz-96 right-hand side and the core's peak flop rate, `-- bio_overhead` the cost of
//! each bio mechanism in training, `-- train_step` one training step of each model (the paper
//! sizes too with `CHAOSCAST_BENCH_PAPER=1`, on the GPU with `CHAOSCAST_BENCH_DEVICE=cuda` in a
//! `--features cuda` build; `benches/compare_torch.py` runs the same steps in PyTorch and prints
//! both side by side). The two-scale Lorenz-96
//! paper dataset (10,000 samples, rtol = atol = 1e-10) takes several seconds per iteration;
//! `benches/compare_scipy.py` times the same job in scipy.

/// The same allocator as the binary, so training here behaves as it does there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use chaoscast::data::store::{Format, write_dataset};
use chaoscast::prelude::*;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

/// Generation as `chaoscast generate` does it: integrate (transient included) and write Parquet.
fn generation(c: &mut Criterion) {
    let mut group = c.benchmark_group("generate");
    group.sample_size(10);
    let dir = tempfile::tempdir().expect("a temporary folder should be available");
    for (system, samples, seconds) in [
        (SystemName::Thomas, 10_000usize, 5),
        (SystemName::Lorenz96TwoScale, 10_000, 75),
    ] {
        group.measurement_time(Duration::from_secs(seconds));
        let mut spec = RecipeSpec::for_system(system);
        spec.samples = Some(samples);
        let recipe = spec.resolve().expect("the default recipe should be valid");
        let path = dir.path().join(format!("{system}.parquet"));
        group.bench_with_input(
            BenchmarkId::new(system.as_str(), format!("samples={samples}")),
            &recipe,
            |b, recipe| {
                b.iter(|| {
                    let data = generate(recipe, &NoProgress).expect("generation should succeed");
                    write_dataset(&data, &path, Format::Parquet, true)
                        .expect("write should succeed");
                })
            },
        );
    }
    group.finish();
}

/// The machine's limit against which generation is measured, on one core: one evaluation of
/// the two-scale Lorenz-96 right-hand side (K = 36, J = 10, at a state on the attractor: about
/// 2,736 flops, README "Performance"), and the core's peak double-precision rate, measured with
/// twelve independent chains of eight-lane AVX-512 multiply-adds, once fused (FMA, the marketed
/// peak) and once as a separate multiply and add (the instructions the integrator may use: it
/// keeps FMA off so that its bits never depend on the CPU). Criterion reports both as elements
/// (flops) per second.
fn machine_limit(c: &mut Criterion) {
    use chaoscast::systems::{Lorenz96TwoScale, OdeSystem, perturbed_state};
    let mut group = c.benchmark_group("limit");
    let system = Lorenz96TwoScale::default();
    let warm = chaoscast::systems::integrate::advance(
        &system,
        &perturbed_state(&system, 0, 1e-3),
        0.0,
        10.0,
        Default::default(),
        &NoProgress,
    )
    .expect("the transient should integrate");
    let mut out = vec![0.0; system.dim()];
    group.bench_function("l96-two-scale-rhs", |b| {
        b.iter(|| system.rhs(0.0, std::hint::black_box(&warm), &mut out))
    });
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma")
    {
        const ROUNDS: usize = 100_000;
        // 12 chains × 8 lanes × 2 flops a round.
        group.throughput(criterion::Throughput::Elements(
            (ROUNDS * 12 * 8 * 2) as u64,
        ));
        group.bench_function("peak-fma", |b| b.iter(|| unsafe { peak::<true>(ROUNDS) }));
        group.bench_function("peak-mul-add", |b| {
            b.iter(|| unsafe { peak::<false>(ROUNDS) })
        });
    }
    group.finish();
}

/// `rounds` multiply-adds on 12 independent 8-lane accumulators (fused or not), written with
/// the AVX-512 intrinsics so that the compiler cannot change the instruction mix.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn peak<const FUSED: bool>(rounds: usize) -> f64 {
    use std::arch::x86_64::*;
    let m = _mm512_set1_pd(std::hint::black_box(0.999_999_9));
    let a = _mm512_set1_pd(std::hint::black_box(1e-7));
    let mut acc = [_mm512_set1_pd(1.0); 12];
    for _ in 0..rounds {
        for v in acc.iter_mut() {
            *v = if FUSED {
                _mm512_fmadd_pd(*v, m, a)
            } else {
                _mm512_add_pd(_mm512_mul_pd(*v, m), a)
            };
        }
    }
    acc.iter().map(|v| _mm512_reduce_add_pd(*v)).sum()
}

/// What the bio mechanisms add to training: one epoch (7 optimizer steps of 64 windows, ASAM,
/// Adam, plus validation) of the small LSTM, the small FDN and the small transformer on a short
/// Thomas series with lookback 50 and horizon 10, for each mechanism alone, FL + WR
/// (paper-tuned) and all three (paper-default).
fn bio_overhead(c: &mut Criterion) {
    use burn::backend::{Autodiff, Flex};
    use chaoscast::bio::{BioConfig, BioPreset};
    use chaoscast::models::{ModelKind, Preset};
    use chaoscast::train::trainer::{Silent, TrainConfig, train};

    let mut spec = RecipeSpec::for_system(SystemName::Thomas);
    spec.samples = Some(600);
    let data = generate(&spec.resolve().expect("valid recipe"), &NoProgress)
        .expect("generation should succeed");
    let mut group = c.benchmark_group("bio_overhead");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    let tuned = BioConfig::preset(BioPreset::PaperTuned);
    let variants = [
        ("none", BioConfig::default()),
        (
            "fl",
            BioConfig {
                rejuvenation: None,
                ..tuned.clone()
            },
        ),
        (
            "wr",
            BioConfig {
                fuzzy_lr: None,
                ..tuned.clone()
            },
        ),
        ("fl+wr", tuned),
        (
            "ws",
            BioConfig {
                fuzzy_lr: None,
                rejuvenation: None,
                ..BioConfig::preset(BioPreset::PaperDefault)
            },
        ),
        ("fl+wr+ws", BioConfig::preset(BioPreset::PaperDefault)),
    ];
    for kind in [ModelKind::Lstm, ModelKind::Fdn, ModelKind::Transformer] {
        for (name, bio) in &variants {
            let mut cfg = TrainConfig::preset(kind, Preset::Small, 3, 50, 10);
            cfg.epochs = 1;
            cfg.bio = bio.clone();
            group.bench_with_input(
                BenchmarkId::new(format!("{kind:?}").to_lowercase(), name),
                &cfg,
                |b, cfg| {
                    b.iter(|| {
                        train::<Autodiff<Flex>>(cfg, &data, &Default::default(), &mut Silent)
                            .expect("training should succeed")
                    })
                },
            );
        }
    }
    group.finish();
}

/// One training step of each model, at the sizes of the performance table in the README.
///
/// `bare-*`: the recurrent step alone, as PyTorch users time it: one LSTM or GRU layer over
/// `[batch, 150, 3]`, a linear head on the last hidden state, MSE, plain SGD; `*-unfused` is the
/// same step through the op-by-op cells (the speed before the fused layers). `<model>/*-plain`
/// and `*-asam`: the full forecaster as `train` runs it (attention head for the recurrent models,
/// horizon 41, Adam), with plain gradients and with ASAM (two passes).
fn train_step(c: &mut Criterion) {
    use burn::backend::{Autodiff, Flex};
    match std::env::var("CHAOSCAST_BENCH_DEVICE").as_deref() {
        Ok("cuda") => {
            #[cfg(feature = "cuda")]
            steps::run::<Autodiff<burn::backend::Cuda>>(c, &Default::default());
            #[cfg(not(feature = "cuda"))]
            panic!("CHAOSCAST_BENCH_DEVICE=cuda needs a build with --features cuda");
        }
        Ok("cpu") | Err(_) => steps::run::<Autodiff<Flex>>(c, &Default::default()),
        Ok(other) => panic!("CHAOSCAST_BENCH_DEVICE must be cpu or cuda, not {other}"),
    }
}

mod steps {
    use std::time::Duration;

    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{AdamConfig, GradientsParams, Optimizer, SgdConfig};
    use burn::prelude::*;
    use burn::tensor::backend::AutodiffBackend;
    use chaoscast::models::cells::{GruCell, LstmCell, RecurrentCell};
    use chaoscast::models::{CellKind, Model, ModelConfig, ModelKind, Preset};
    use chaoscast::train::asam::{Sharpness, gradients};
    use criterion::{BenchmarkId, Criterion};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    const LOOKBACK: usize = 150;
    const VARS: usize = 3;
    const HORIZON: usize = 41;

    fn normal<B: Backend, const D: usize>(
        shape: [usize; D],
        seed: u64,
        device: &B::Device,
    ) -> Tensor<B, D> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = shape.iter().product();
        let values: Vec<f32> = (0..n).map(|_| StandardNormal.sample(&mut rng)).collect();
        Tensor::from_data(TensorData::new(values, shape), device)
    }

    /// The bare recurrent step's model: one layer and a linear head on the last hidden state.
    #[derive(Module, Debug)]
    pub struct Bare<B: Backend> {
        cell: RecurrentCell<B>,
        head: Linear<B>,
        fused: bool,
    }

    impl<B: Backend> Bare<B> {
        fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 2> {
            let states = if self.fused {
                self.cell.forward(x)
            } else {
                self.cell.forward_unfused(x)
            };
            let [batch, steps, hidden] = states.dims();
            self.head
                .forward(states.narrow(1, steps - 1, 1).reshape([batch, hidden]))
        }
    }

    pub fn run<B: AutodiffBackend>(c: &mut Criterion, device: &B::Device) {
        let paper = std::env::var("CHAOSCAST_BENCH_PAPER").is_ok_and(|v| v == "1");
        let mut group = c.benchmark_group("train_step");
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(if paper { 20 } else { 6 }));
        group.warm_up_time(Duration::from_secs(2));

        let mut bare = vec![(64, 128, true), (64, 128, false)];
        if paper {
            bare.push((256, 512, true));
        }
        for (batch, hidden, fused) in bare {
            for kind in [CellKind::Lstm, CellKind::Gru] {
                let mut rng = ChaCha8Rng::seed_from_u64(0);
                let cell = match kind {
                    CellKind::Lstm => {
                        RecurrentCell::Lstm(LstmCell::new(&mut rng, VARS, hidden, device))
                    }
                    CellKind::Gru => {
                        RecurrentCell::Gru(GruCell::new(&mut rng, VARS, hidden, device))
                    }
                };
                let mut model = Some(Bare {
                    cell,
                    head: LinearConfig::new(hidden, VARS).init(device),
                    fused,
                });
                let x = normal::<B, 3>([batch, LOOKBACK, VARS], 1, device);
                let y = normal::<B, 2>([batch, VARS], 2, device);
                let mut sgd = SgdConfig::new().init();
                let name = format!(
                    "bare-{}{}",
                    format!("{kind:?}").to_lowercase(),
                    if fused { "" } else { "-unfused" }
                );
                group.bench_function(BenchmarkId::new(name, format!("b{batch}-h{hidden}")), |b| {
                    b.iter(|| {
                        let m = model.take().expect("the model is put back after each step");
                        let loss = (m.forward(x.clone()) - y.clone()).square().mean();
                        let _ = loss.clone().into_scalar();
                        let grads = GradientsParams::from_grads(loss.backward(), &m);
                        model = Some(sgd.step(0.01, m, grads));
                    })
                });
            }
        }

        let mut sizes = vec![Preset::Small];
        if paper {
            sizes.push(Preset::Paper);
        }
        for preset in sizes {
            let (batch, hidden) = match preset {
                Preset::Small | Preset::Default => (64, 128),
                Preset::Paper => (256, 512),
            };
            for kind in [
                ModelKind::Lstm,
                ModelKind::Gru,
                ModelKind::Fdn,
                ModelKind::Transformer,
            ] {
                let cfg = match ModelConfig::preset(kind, preset, VARS, LOOKBACK, HORIZON) {
                    ModelConfig::Recurrent(r) => ModelConfig::Recurrent(r.with_hidden(hidden)),
                    other => other,
                };
                let x = normal::<B, 3>([batch, LOOKBACK, VARS], 1, device);
                let y = normal::<B, 3>([batch, HORIZON, VARS], 2, device);
                for (label, sharpness) in
                    [("plain", Sharpness::None), ("asam", Sharpness::default())]
                {
                    let mut model: Option<Model<B>> =
                        Some(cfg.init(device).expect("preset configs are valid"));
                    let mut adam = AdamConfig::new().with_epsilon(1e-8).init();
                    let size = format!("{preset:?}").to_lowercase();
                    group.bench_function(
                        BenchmarkId::new(cfg.name(), format!("{size}-{label}")),
                        |b| {
                            b.iter(|| {
                                let m =
                                    model.take().expect("the model is put back after each step");
                                let (_, grads) = gradients(&m, sharpness, |m: &Model<B>| {
                                    (m.forward(x.clone()) - y.clone()).square().mean()
                                });
                                model = Some(adam.step(1e-3, m, grads));
                            })
                        },
                    );
                }
            }
        }
        group.finish();
    }
}

criterion_group!(benches, generation, machine_limit, bio_overhead, train_step);
criterion_main!(benches);

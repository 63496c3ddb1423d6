//! Systems: symmetries (property tests), Jacobians, the integrator against closed forms, and the
//! Lyapunov estimator against the literature.

use approx::assert_relative_eq;
use chaoscast::prelude::*;
use chaoscast::systems::integrate::{Tolerances, advance, sample};
use chaoscast::systems::{Lorenz96, Lorenz96TwoScale, Params, Thomas};
use proptest::prelude::*;

fn rhs(system: &dyn OdeSystem, y: &[f64]) -> Vec<f64> {
    let mut dy = vec![0.0; y.len()];
    system.rhs(0.0, y, &mut dy);
    dy
}

proptest! {
    /// Thomas is symmetric under the cyclic shift (x, y, z) → (y, z, x).
    #[test]
    fn thomas_cyclic_symmetry(x in -5.0..5.0f64, y in -5.0..5.0f64, z in -5.0..5.0f64,
                              a in 0.1..3.0f64, b in 0.5..12.0f64) {
        let s = Thomas { a, b };
        let f = rhs(&s, &[x, y, z]);
        let g = rhs(&s, &[y, z, x]);
        prop_assert!((g[0] - f[1]).abs() < 1e-12);
        prop_assert!((g[1] - f[2]).abs() < 1e-12);
        prop_assert!((g[2] - f[0]).abs() < 1e-12);
    }

    /// Lorenz-96 commutes with shifting the ring by one site.
    #[test]
    fn lorenz96_shift_equivariance(x in prop::collection::vec(-10.0..10.0f64, 4..40),
                                   f in 0.0..30.0f64, shift in 1usize..4) {
        let s = Lorenz96 { n: x.len(), f };
        let n = x.len();
        let shifted: Vec<f64> = (0..n).map(|k| x[(k + shift) % n]).collect();
        let fx = rhs(&s, &x);
        let fs = rhs(&s, &shifted);
        for k in 0..n {
            prop_assert!((fs[k] - fx[(k + shift) % n]).abs() < 1e-10);
        }
    }

    /// Two-scale Lorenz-96 commutes with shifting the slow ring by one site and the fast ring by J.
    #[test]
    fn lorenz96_two_scale_shift_equivariance(seed in 0u64..1000, k in 4usize..8, j in 1usize..5,
                                             shift in 1usize..3) {
        let s = Lorenz96TwoScale { k, j, ..Default::default() };
        let n = k * (1 + j);
        let y: Vec<f64> = (0..n).map(|i| ((i as f64 + seed as f64) * 0.7).sin() * 5.0).collect();
        let mut shifted = vec![0.0; n];
        for kk in 0..k {
            shifted[kk] = y[(kk + shift) % k];
        }
        for i in 0..k * j {
            shifted[k + i] = y[k + (i + shift * j) % (k * j)];
        }
        let fy = rhs(&s, &y);
        let fs = rhs(&s, &shifted);
        for kk in 0..k {
            prop_assert!((fs[kk] - fy[(kk + shift) % k]).abs() < 1e-9);
        }
        for i in 0..k * j {
            prop_assert!((fs[k + i] - fy[k + (i + shift * j) % (k * j)]).abs() < 1e-9);
        }
    }
}

/// The analytic Jacobian-vector products agree with central finite differences.
#[test]
fn jacobians_match_finite_differences() {
    for name in SystemName::ALL {
        let mut params = Params::new();
        if name == SystemName::Lorenz96TwoScale {
            params.insert("K".into(), 5.0);
            params.insert("J".into(), 3.0);
        }
        let s = name.build(&params).unwrap();
        let n = s.dim();
        let y: Vec<f64> = (0..n).map(|i| (i as f64 * 1.7 + 0.3).sin() * 3.0).collect();
        let v: Vec<f64> = (0..n).map(|i| (i as f64 * 0.9 + 1.1).cos()).collect();
        let mut jv = vec![0.0; n];
        s.jvp(0.0, &y, &v, &mut jv);
        let eps = 1e-6;
        let plus: Vec<f64> = y.iter().zip(&v).map(|(a, b)| a + eps * b).collect();
        let minus: Vec<f64> = y.iter().zip(&v).map(|(a, b)| a - eps * b).collect();
        let (fp, fm) = (rhs(s.as_ref(), &plus), rhs(s.as_ref(), &minus));
        for i in 0..n {
            let fd = (fp[i] - fm[i]) / (2.0 * eps);
            assert_relative_eq!(jv[i], fd, epsilon = 1e-5, max_relative = 1e-6);
        }
    }
}

/// A harmonic oscillator y'' = −ω²y, solved by y = cos ωt, y' = −ω sin ωt.
struct Oscillator {
    omega: f64,
}

impl OdeSystem for Oscillator {
    fn name(&self) -> &str {
        "oscillator"
    }
    fn dim(&self) -> usize {
        2
    }
    fn var_names(&self) -> Vec<String> {
        vec!["y".into(), "v".into()]
    }
    fn rhs(&self, _t: f64, y: &[f64], dy: &mut [f64]) {
        dy[0] = y[1];
        dy[1] = -self.omega * self.omega * y[0];
    }
    fn initial_state(&self) -> Vec<f64> {
        vec![1.0, 0.0]
    }
    fn params(&self) -> Params {
        Params::new()
    }
}

#[test]
fn integrator_matches_closed_form() {
    let s = Oscillator { omega: 2.0 };
    let tol = Tolerances {
        rtol: 1e-12,
        atol: 1e-12,
    };
    let dt = 0.05;
    let rows = sample(&s, &[1.0, 0.0], 0.0, dt, 400, tol, &NoProgress).unwrap();
    assert_eq!(rows.len(), 800);
    for i in 0..400 {
        let t = i as f64 * dt;
        assert_relative_eq!(rows[2 * i], (2.0 * t).cos(), epsilon = 1e-9);
        assert_relative_eq!(rows[2 * i + 1], -2.0 * (2.0 * t).sin(), epsilon = 1e-9);
    }
    let end = advance(&s, &[1.0, 0.0], 0.0, 7.3, tol, &NoProgress).unwrap();
    assert_relative_eq!(end[0], (2.0 * 7.3f64).cos(), epsilon = 1e-9);
    // The finite-difference default Jacobian is right for a linear system.
    let mut jv = [0.0; 2];
    s.jvp(0.0, &[0.3, 0.1], &[1.0, 0.0], &mut jv);
    assert_relative_eq!(jv[1], -4.0, epsilon = 1e-5);
}

#[test]
fn blow_up_is_an_error() {
    // With a < 0 the Thomas system grows like e^{|a| t}: the state overflows.
    let mut spec = RecipeSpec::for_system(SystemName::Thomas);
    spec.params.insert("a".into(), -50.0);
    spec.samples = Some(10);
    let recipe = spec.resolve().unwrap();
    let err = generate(&recipe, &NoProgress).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
}

#[test]
fn lorenz63_exponent_matches_literature() {
    // 0.9056: Sprott, "Chaos and Time-Series Analysis" (2003), for σ = 10, ρ = 28, β = 8/3.
    let system = SystemName::Lorenz63.build(&Params::new()).unwrap();
    let cfg = LyapunovConfig::for_system(SystemName::Lorenz63);
    let estimate = largest_lyapunov(system.as_ref(), &cfg, &NoProgress).unwrap();
    assert!(
        (estimate.mean - 0.9056).abs() < 0.03 * 0.9056,
        "estimate {estimate:?}"
    );
    assert!(estimate.spread() < 0.05, "spread {}", estimate.spread());
    // The exponent a dataset generated by name carries is this measurement.
    let carried = SystemName::Lorenz63.defaults().lyapunov;
    assert!(
        (estimate.mean - carried).abs() < 0.01 * carried,
        "{estimate:?} against {carried}"
    );
}

/// Our DOP853 against `ode_solvers`' on the same problem: both run Hairer's algorithm with the
/// same coefficients and step control, so their samples agree far below the tolerance.
#[test]
fn dop853_agrees_with_ode_solvers() {
    use ode_solvers::{DVector, Dop853, System};
    struct Wrapped(Box<dyn OdeSystem>);
    impl System<f64, DVector<f64>> for Wrapped {
        fn system(&self, t: f64, y: &DVector<f64>, dy: &mut DVector<f64>) {
            self.0.rhs(t, y.as_slice(), dy.as_mut_slice());
        }
    }
    for (name, dt, samples) in [
        (SystemName::Lorenz63, 0.02, 150),
        (SystemName::Thomas, 0.0497, 200),
        (SystemName::Lorenz96, 0.05, 60),
    ] {
        let system = name.build(&Params::new()).unwrap();
        let y0 = system.initial_state();
        let tol = Tolerances {
            rtol: 1e-10,
            atol: 1e-10,
        };
        let ours = sample(system.as_ref(), &y0, 0.0, dt, samples, tol, &NoProgress).unwrap();
        // ode_solvers extrapolates an output within 1e-9 of its end: end half a step later.
        let end = (samples as f64 - 0.5) * dt;
        let mut reference = Dop853::new(
            Wrapped(name.build(&Params::new()).unwrap()),
            0.0,
            end,
            dt,
            DVector::from_vec(y0.clone()),
            tol.rtol,
            tol.atol,
        );
        reference.integrate().unwrap();
        let theirs = reference.y_out();
        assert_eq!(theirs.len(), samples);
        let n = y0.len();
        for (i, row) in theirs.iter().enumerate() {
            for d in 0..n {
                let (a, b) = (ours[i * n + d], row[d]);
                assert!(
                    (a - b).abs() < 1e-8 * (1.0 + b.abs()),
                    "{name} sample {i}: {a} vs {b}"
                );
            }
        }
    }
}

/// Every integrator against the oscillator's closed form: Dopri5 at rtol = atol = 1e-12 and RK4
/// at h = 1e-3 (global error about h⁴·t, well under 1e-9 here), sampled and advanced.
#[test]
fn every_integrator_matches_closed_form() {
    use chaoscast::systems::integrate::{Method, advance_by, sample_by};
    let s = Oscillator { omega: 2.0 };
    let tol = Tolerances {
        rtol: 1e-12,
        atol: 1e-12,
    };
    let dt = 0.05;
    for method in [
        Method::Dop853(tol),
        Method::Dopri5(tol),
        Method::Rk4 { step: 1e-3 },
    ] {
        let rows = sample_by(method, &s, &[1.0, 0.0], 0.0, dt, 400, &NoProgress).unwrap();
        assert_eq!(rows.len(), 800, "{method:?}");
        for i in 0..400 {
            let t = i as f64 * dt;
            assert!(
                (rows[2 * i] - (2.0 * t).cos()).abs() < 1e-8,
                "{method:?} at {t}"
            );
            assert!(
                (rows[2 * i + 1] + 2.0 * (2.0 * t).sin()).abs() < 1e-8,
                "{method:?} at {t}"
            );
        }
        let end = advance_by(method, &s, &[1.0, 0.0], 0.0, 7.3, &NoProgress).unwrap();
        assert!(
            (end[0] - (2.0 * 7.3f64).cos()).abs() < 1e-8,
            "{method:?}: {end:?}"
        );
    }
    // A step that does not divide dt is refused.
    let err = sample_by(
        Method::Rk4 { step: 0.03 },
        &s,
        &[1.0, 0.0],
        0.0,
        dt,
        4,
        &NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("must divide"), "{err}");
}

/// Our RK4 is `ode_solvers`' RK4, step for step (which keeps every step in memory; ours does not).
#[test]
fn rk4_agrees_with_ode_solvers() {
    use chaoscast::systems::integrate::{Method, sample_by};
    use ode_solvers::{DVector, Rk4, System};
    struct Wrapped(Box<dyn OdeSystem>);
    impl System<f64, DVector<f64>> for Wrapped {
        fn system(&self, t: f64, y: &DVector<f64>, dy: &mut DVector<f64>) {
            self.0.rhs(t, y.as_slice(), dy.as_mut_slice());
        }
    }
    let system = SystemName::Lorenz63.build(&Params::new()).unwrap();
    let y0 = system.initial_state();
    let (step, samples) = (0.001, 200);
    let ours = sample_by(
        Method::Rk4 { step },
        system.as_ref(),
        &y0,
        0.0,
        step,
        samples,
        &NoProgress,
    )
    .unwrap();
    let mut theirs = Rk4::new(
        Wrapped(SystemName::Lorenz63.build(&Params::new()).unwrap()),
        0.0,
        DVector::from_vec(y0.clone()),
        (samples - 1) as f64 * step,
        step,
    );
    theirs.integrate().unwrap();
    for (i, row) in theirs.y_out().iter().take(samples).enumerate() {
        for d in 0..3 {
            let (a, b) = (ours[i * 3 + d], row[d]);
            assert!(
                (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                "sample {i}: {a} vs {b}"
            );
        }
    }
}

/// `generate --integrator` records its choice in the recipe and the three integrators agree on
/// a short stretch of Lorenz-63; RK4 needs a step that divides dt, and only RK4 takes one.
#[test]
fn generate_with_each_integrator() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let run = |args: &[&str]| crate::cli::chaoscast(d, args);
    let base = [
        "generate",
        "lorenz63",
        "--samples",
        "100",
        "--transient",
        "1",
        "-q",
    ];
    for (file, extra) in [
        ("dop853.parquet", &[][..]),
        ("dopri5.parquet", &["--integrator", "dopri5"][..]),
        (
            "rk4.parquet",
            &["--integrator", "rk4", "--step", "0.0005"][..],
        ),
    ] {
        let mut args = base.to_vec();
        args.extend(extra);
        args.extend(["-o", file]);
        let out = run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let read = |f: &str| read_dataset(&d.join(f)).unwrap();
    let (a, b, c) = (
        read("dop853.parquet"),
        read("dopri5.parquet"),
        read("rk4.parquet"),
    );
    use chaoscast::systems::integrate::Integrator;
    assert_eq!(a.meta.recipe.integrator, Integrator::Dop853);
    assert_eq!(b.meta.recipe.integrator, Integrator::Dopri5);
    assert_eq!(c.meta.recipe.integrator, Integrator::Rk4);
    assert_eq!(c.meta.recipe.step, Some(0.0005));
    for (x, (y, z)) in a.values.iter().zip(b.values.iter().zip(&c.values)) {
        assert!((x - y).abs() < 1e-6 * (1.0 + x.abs()), "{x} vs {y}");
        assert!((x - z).abs() < 1e-6 * (1.0 + x.abs()), "{x} vs {z}");
    }
    for (extra, needle) in [
        (
            &["--integrator", "rk4"][..],
            "RK4 integrates at a fixed step",
        ),
        (
            &["--integrator", "rk4", "--step", "0.003"][..],
            "must divide",
        ),
        (&["--step", "0.001"][..], "a fixed step is RK4's"),
        (
            &["--integrator", "rk4", "--step", "0.0005", "--rtol", "1e-8"][..],
            "RK4 integrates at a fixed step and has no tolerance",
        ),
    ] {
        let mut args = base.to_vec();
        args.extend(extra);
        args.extend(["-o", "bad.parquet"]);
        let out = run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
        assert!(!d.join("bad.parquet").exists());
    }
}

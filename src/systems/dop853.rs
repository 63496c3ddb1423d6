//! An allocation-free DOP853 stepper: the 8(5,3) Dormand–Prince pair with Hairer's step-size
//! control and 7th-order dense output (Hairer, Nørsett & Wanner, "Solving Ordinary Differential
//! Equations I", 2nd ed., 1993, §II.10; the coefficients of Hairer's `dop853.f`).
//!
//! It computes what `ode_solvers::Dop853` computes (a test checks the two agree), but on flat
//! slices: every stage is a few fused passes over preallocated vectors, and the three extra stages
//! of the dense output are evaluated only for steps that contain an output time (`ode_solvers`
//! allocates a temporary per term and builds the dense output on every step); each stage sums its
//! terms in registers, and the stepper is compiled for the widest vectors the CPU has without
//! changing a bit ([`super::wide`]). Generating the two-scale Lorenz-96 paper dataset took 41 s
//! through `ode_solvers` 0.6 and takes 2.6 s now, part of that from a faster right-hand side
//! (the README has the steps).

// The coefficients are Hairer's `dop853.f` digits, kept verbatim so they can be checked against it.
#![allow(clippy::excessive_precision)]

use super::OdeSystem;
use crate::error::{Error, Result};
use crate::progress::Progress;

/// Tolerances of the adaptive integrator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerances {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
}

impl Default for Tolerances {
    /// rtol = atol = 1e-10, SPEC.md §2's default for dataset generation.
    fn default() -> Self {
        Self {
            rtol: 1e-10,
            atol: 1e-10,
        }
    }
}

/// Nodes c_i (c_12 = c_13 = 1: the last stage and the first-same-as-last evaluation are at t + h).
const C: [f64; 16] = [
    0.0,
    0.526001519587677318785587544488E-01,
    0.789002279381515978178381316732E-01,
    0.118350341907227396726757197510E+00,
    0.281649658092772603273242802490E+00,
    0.333333333333333333333333333333E+00,
    0.25E+00,
    0.307692307692307692307692307692E+00,
    0.651282051282051282051282051282E+00,
    0.6E+00,
    0.857142857142857142857142857142E+00,
    1.0,
    1.0,
    0.1E+00,
    0.2E+00,
    0.777777777777777777777777777778E+00,
];

/// Stage coefficients a_{i,j}: row `i - 2` gives stage i (2..=16) from the earlier vectors.
/// Row 13 (index 11) is unused: stage 13 is f(t + h, y_new), evaluated separately.
#[rustfmt::skip]
const A: [&[f64]; 15] = [
    &[5.26001519587677318785587544488E-2],
    &[1.97250569845378994544595329183E-2, 5.91751709536136983633785987549E-2],
    &[2.95875854768068491816892993775E-2, 0.0, 8.87627564304205475450678981324E-2],
    &[2.41365134159266685502369798665E-1, 0.0, -8.84549479328286085344864962717E-1,
      9.24834003261792003115737966543E-1],
    &[3.7037037037037037037037037037E-2, 0.0, 0.0, 1.70828608729473871279604482173E-1,
      1.25467687566822425016691814123E-1],
    &[3.7109375E-2, 0.0, 0.0, 1.70252211019544039314978060272E-1,
      6.02165389804559606850219397283E-2, -1.7578125E-2],
    &[3.70920001185047927108779319836E-2, 0.0, 0.0, 1.70383925712239993810214054705E-1,
      1.07262030446373284651809199168E-1, -1.53194377486244017527936158236E-2,
      8.27378916381402288758473766002E-3],
    &[6.24110958716075717114429577812E-1, 0.0, 0.0, -3.36089262944694129406857109825E0,
      -8.68219346841726006818189891453E-1, 2.75920996994467083049415600797E1,
      2.01540675504778934086186788979E1, -4.34898841810699588477366255144E1],
    &[4.77662536438264365890433908527E-1, 0.0, 0.0, -2.48811461997166764192642586468E0,
      -5.90290826836842996371446475743E-1, 2.12300514481811942347288949897E1,
      1.52792336328824235832596922938E1, -3.32882109689848629194453265587E1,
      -2.03312017085086261358222928593E-2],
    &[-9.3714243008598732571704021658E-1, 0.0, 0.0, 5.18637242884406370830023853209E0,
      1.09143734899672957818500254654E0, -8.14978701074692612513997267357E0,
      -1.85200656599969598641566180701E1, 2.27394870993505042818970056734E1,
      2.49360555267965238987089396762E0, -3.0467644718982195003823669022E0],
    &[2.27331014751653820792359768449E0, 0.0, 0.0, -1.05344954667372501984066689879E1,
      -2.00087205822486249909675718444E0, -1.79589318631187989172765950534E1,
      2.79488845294199600508499808837E1, -2.85899827713502369474065508674E0,
      -8.87285693353062954433549289258E0, 1.23605671757943030647266201528E1,
      6.43392746015763530355970484046E-1],
    &[],
    &[5.61675022830479523392909219681E-2, 0.0, 0.0, 0.0, 0.0, 0.0,
      2.53500210216624811088794765333E-1, -2.46239037470802489917441475441E-1,
      -1.24191423263816360469010140626E-1, 1.5329179827876569731206322685E-1,
      8.20105229563468988491666602057E-3, 7.56789766054569976138603589584E-3, -8.298E-3],
    &[3.18346481635021405060768473261E-2, 0.0, 0.0, 0.0, 0.0,
      2.83009096723667755288322961402E-2, 5.35419883074385676223797384372E-2,
      -5.49237485713909884646569340306E-2, 0.0, 0.0, -1.08347328697249322858509316994E-4,
      3.82571090835658412954920192323E-4, -3.40465008687404560802977114492E-4,
      1.41312443674632500278074618366E-1],
    &[-4.28896301583791923408573538692E-1, 0.0, 0.0, 0.0, 0.0,
      -4.69762141536116384314449447206E0, 7.68342119606259904184240953878E0,
      4.06898981839711007970213554331E0, 3.56727187455281109270669543021E-1, 0.0, 0.0, 0.0,
      -1.39902416515901462129418009734E-3, 2.9475147891527723389556272149E0,
      -9.15095847217987001081870187138E0],
];

/// Weights of the 8th-order solution (stages 1..12; zero for 2..5).
#[rustfmt::skip]
const B: [f64; 12] = [
    5.42937341165687622380535766363E-2, 0.0, 0.0, 0.0, 0.0,
    4.45031289275240888144113950566E0, 1.89151789931450038304281599044E0,
    -5.8012039600105847814672114227E0, 3.1116436695781989440891606237E-1,
    -1.52160949662516078556178806805E-1, 2.01365400804030348374776537501E-1,
    4.47106157277725905176885569043E-2,
];

/// The 3rd-order embedded error weights on stages 1, 9 and 12.
const BHH: [f64; 3] = [
    0.244094488188976377952755905512E+00,
    0.733846688281611857341361741547E+00,
    0.220588235294117647058823529412E-01,
];

/// The 5th-order embedded error weights (stages 1..12).
#[rustfmt::skip]
const E: [f64; 12] = [
    0.1312004499419488073250102996E-01, 0.0, 0.0, 0.0, 0.0,
    -0.1225156446376204440720569753E+01, -0.4957589496572501915214079952E+00,
    0.1664377182454986536961530415E+01, -0.3503288487499736816886487290E+00,
    0.3341791187130174790297318841E+00, 0.8192320648511571246570742613E-01,
    -0.2235530786388629525884427845E-01,
];

/// Dense-output coefficients over stages 1..16 for the 5th..8th interpolation terms.
#[rustfmt::skip]
const D: [[f64; 16]; 4] = [
    [-0.84289382761090128651353491142E+01, 0.0, 0.0, 0.0, 0.0,
     0.56671495351937776962531783590E+00, -0.30689499459498916912797304727E+01,
     0.23846676565120698287728149680E+01, 0.21170345824450282767155149946E+01,
     -0.87139158377797299206789907490E+00, 0.22404374302607882758541771650E+01,
     0.63157877876946881815570249290E+00, -0.88990336451333310820698117400E-01,
     0.18148505520854727256656404962E+02, -0.91946323924783554000451984436E+01,
     -0.44360363875948939664310572000E+01],
    [0.10427508642579134603413151009E+02, 0.0, 0.0, 0.0, 0.0,
     0.24228349177525818288430175319E+03, 0.16520045171727028198505394887E+03,
     -0.37454675472269020279518312152E+03, -0.22113666853125306036270938578E+02,
     0.77334326684722638389603898808E+01, -0.30674084731089398182061213626E+02,
     -0.93321305264302278729567221706E+01, 0.15697238121770843886131091075E+02,
     -0.31139403219565177677282850411E+02, -0.93529243588444783865713862664E+01,
     0.35816841486394083752465898540E+02],
    [0.19985053242002433820987653617E+02, 0.0, 0.0, 0.0, 0.0,
     -0.38703730874935176555105901742E+03, -0.18917813819516756882830838328E+03,
     0.52780815920542364900561016686E+03, -0.11573902539959630126141871134E+02,
     0.68812326946963000169666922661E+01, -0.10006050966910838403183860980E+01,
     0.77771377980534432092869265740E+00, -0.27782057523535084065932004339E+01,
     -0.60196695231264120758267380846E+02, 0.84320405506677161018159903784E+02,
     0.11992291136182789328035130030E+02],
    [-0.25693933462703749003312586129E+02, 0.0, 0.0, 0.0, 0.0,
     -0.15418974869023643374053993627E+03, -0.23152937917604549567536039109E+03,
     0.35763911791061412378285349910E+03, 0.93405324183624310003907691704E+02,
     -0.37458323136451633156875139351E+02, 0.10409964950896230045147246184E+03,
     0.29840293426660503123344363579E+02, -0.43533456590011143754432175058E+02,
     0.96324553959188282948394950600E+02, -0.39177261675615439165231486172E+02,
     -0.14972683625798562581422125276E+03],
];

// Step-size control (Hairer's defaults for DOP853).
const SAFETY: f64 = 0.9;
const FAC_MIN: f64 = 0.333;
const FAC_MAX: f64 = 6.0;

/// Output times `t0 + i·dt`, `i = 0..count`, received with their states by a callback.
pub(crate) struct Outputs<'a> {
    pub dt: f64,
    pub count: usize,
    pub sink: &'a mut dyn FnMut(usize, &[f64]),
}

super::wide::dispatch! {
    /// Integrates from `(t0, y0)` to `t_end` and returns the final state; with `outputs`, also
    /// delivers the states at `t0 + i·dt` by dense output (the caller sets `t_end` to the last
    /// one). Runs the widest copy of the stepper the CPU has (bit-identical: [`super::wide`]).
    pub(crate) fn integrate / integrate_avx512 / integrate_avx2 = stepper(
        system: &dyn OdeSystem,
        y0: &[f64],
        t0: f64,
        t_end: f64,
        tol: Tolerances,
        outputs: Option<Outputs<'_>>,
        progress: &dyn Progress,
    ) -> Result<Vec<f64>>
}

/// The stepper itself, inlined into each copy of [`integrate`] with its helpers.
#[inline(always)]
fn stepper(
    system: &dyn OdeSystem,
    y0: &[f64],
    t0: f64,
    t_end: f64,
    tol: Tolerances,
    mut outputs: Option<Outputs<'_>>,
    progress: &dyn Progress,
) -> Result<Vec<f64>> {
    let n = y0.len();
    let mut y = y0.to_vec();
    if let Some(out) = outputs.as_mut() {
        (out.sink)(0, &y);
    }
    let mut next_out = 1;
    let span = t_end - t0;
    if span <= 0.0 {
        return Ok(y);
    }
    // k[0..12]: the 12 stages; k[12]: f(t + h, y_new); k[13..16]: the dense-output stages.
    let mut k = vec![vec![0.0; n]; 16];
    let mut y_stage = vec![0.0; n];
    let mut y_new = vec![0.0; n];
    let mut err_hi = vec![0.0; n];
    let mut err_lo = vec![0.0; n];
    let mut dense = vec![vec![0.0; n]; 8];
    let mut row = vec![0.0; n];

    let h_max = span;
    let mut x = t0;
    system.rhs(x, &y, &mut k[0]);
    let mut h = initial_step(system, x, &y, &k[0], tol, h_max, &mut y_stage, &mut row);
    let mut reject = false;
    let mut next_report = t0;
    loop {
        if 0.1 * h.abs() <= f64::EPSILON * x.abs() {
            return Err(Error::Integration(format!(
                "the step size underflowed at t = {x:.6}; the system may be blowing up or too \
                 stiff for DOP853"
            )));
        }
        let last = x + 1.01 * h > t_end;
        if last {
            h = t_end - x;
        }
        // Stages 2..12.
        for s in 1..12 {
            combine(&mut y_stage, &y, h, A[s - 1], &k);
            system.rhs(x + C[s] * h, &y_stage, &mut k[s]);
        }
        let err = error_and_solution(&y, &k, h, tol, &mut y_new, &mut err_hi, &mut err_lo);
        if !err.is_finite() {
            return Err(Error::NonFinite {
                what: "the integrated state".into(),
                at: format!("t = {x:.6}"),
            });
        }
        let fac11 = err.powf(0.125);
        if err <= 1.0 {
            let x_new = if last { t_end } else { x + h };
            system.rhs(x_new, &y_new, &mut k[12]);
            if let Some(out) = outputs.as_mut() {
                let t_next = t0 + next_out as f64 * out.dt;
                if next_out < out.count && (t_next <= x_new || last) {
                    dense_coefficients(system, x, h, &y, &y_new, &mut k, &mut dense, &mut y_stage);
                    while next_out < out.count {
                        let t_out = t0 + next_out as f64 * out.dt;
                        if t_out > x_new && !last {
                            break;
                        }
                        let theta = ((t_out - x) / h).clamp(0.0, 1.0);
                        interpolate(&dense, theta, &mut row);
                        (out.sink)(next_out, &row);
                        next_out += 1;
                    }
                }
            }
            k.swap(0, 12);
            std::mem::swap(&mut y, &mut y_new);
            x = x_new;
            if x >= next_report {
                progress.update(((x - t0) / span).clamp(0.0, 1.0));
                next_report = x + span / 200.0;
            }
            if last {
                return Ok(y);
            }
            let fac = (fac11 / SAFETY).clamp(1.0 / FAC_MAX, 1.0 / FAC_MIN);
            let mut h_new = (h / fac).min(h_max);
            if reject {
                h_new = h_new.min(h);
            }
            reject = false;
            h = h_new;
        } else {
            h /= f64::min(1.0 / FAC_MIN, fac11 / SAFETY);
            reject = true;
        }
    }
}

/// Elements a pass of the blocked loops works on at a time.
const BLOCK: usize = 64;

/// Elements [`combine`] sums in registers at a time (eight AVX2 vectors).
const LANES: usize = 32;

/// `out = base + h · Σ_j coeffs[j] · k[j]`, skipping zero coefficients: each element receives
/// the terms in the order of `coeffs` (what one pass per term would give), summed in registers
/// `LANES` elements at a time, so each stage reads every vector once and writes `out` once.
#[inline(always)]
fn combine(out: &mut [f64], base: &[f64], h: f64, coeffs: &[f64], k: &[Vec<f64>]) {
    let n = out.len();
    let mut hc = [0.0; 16];
    let mut src: [&[f64]; 16] = [&[]; 16];
    let mut terms = 0;
    for (c, kj) in coeffs.iter().zip(k) {
        if *c != 0.0 {
            hc[terms] = h * c;
            src[terms] = &kj[..n];
            terms += 1;
        }
    }
    let (hc, src) = (&hc[..terms], &src[..terms]);
    let whole = n - n % LANES;
    for start in (0..whole).step_by(LANES) {
        let mut acc = [0.0; LANES];
        acc.copy_from_slice(&base[start..start + LANES]);
        for (c, kj) in hc.iter().zip(src) {
            for (a, v) in acc.iter_mut().zip(&kj[start..start + LANES]) {
                *a += c * v;
            }
        }
        out[start..start + LANES].copy_from_slice(&acc);
    }
    for i in whole..n {
        let mut a = base[i];
        for (c, kj) in hc.iter().zip(src) {
            a += c * kj[i];
        }
        out[i] = a;
    }
}

/// Forms the 8th-order solution in `y_new` and returns Hairer's scaled error norm of the step.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn error_and_solution(
    y: &[f64],
    k: &[Vec<f64>],
    h: f64,
    tol: Tolerances,
    y_new: &mut [f64],
    err_hi: &mut [f64],
    err_lo: &mut [f64],
) -> f64 {
    // b·k into y_new, E·k into err_hi, in blocked passes that vectorise.
    let blocks = y_new
        .chunks_mut(BLOCK)
        .zip(err_hi.chunks_mut(BLOCK))
        .enumerate();
    for (b, (yn, eh)) in blocks {
        let span = b * BLOCK..b * BLOCK + yn.len();
        yn.fill(0.0);
        eh.fill(0.0);
        for j in [0usize, 5, 6, 7, 8, 9, 10, 11] {
            let (bj, ej) = (B[j], E[j]);
            for ((yn, eh), v) in yn.iter_mut().zip(eh.iter_mut()).zip(&k[j][span.clone()]) {
                *yn += bj * v;
                *eh += ej * v;
            }
        }
    }
    // The element-wise part first (it vectorises), leaving the scaled errors in err_hi and
    // err_lo; then the two sums, in element order.
    let n = y.len();
    let (k0, k8, k11) = (&k[0][..n], &k[8][..n], &k[11][..n]);
    let (y_new, err_hi, err_lo) = (&mut y_new[..n], &mut err_hi[..n], &mut err_lo[..n]);
    for i in 0..n {
        let bk = y_new[i];
        let lo = bk - BHH[0] * k0[i] - BHH[1] * k8[i] - BHH[2] * k11[i];
        y_new[i] = y[i] + h * bk;
        let sc = tol.atol + tol.rtol * y[i].abs().max(y_new[i].abs());
        err_hi[i] /= sc;
        err_lo[i] = lo / sc;
    }
    let mut err = 0.0;
    let mut err2 = 0.0;
    for (hi, lo) in err_hi.iter().zip(err_lo.iter()) {
        err += hi * hi;
        err2 += lo * lo;
    }
    let mut deno = err + 0.01 * err2;
    if deno <= 0.0 {
        deno = 1.0;
    }
    h.abs() * err * (1.0 / (deno * y.len() as f64)).sqrt()
}

/// The eight coefficient vectors of the continuous extension over the step `[x, x + h]`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn dense_coefficients(
    system: &dyn OdeSystem,
    x: f64,
    h: f64,
    y: &[f64],
    y_new: &[f64],
    k: &mut [Vec<f64>],
    dense: &mut [Vec<f64>],
    y_stage: &mut [f64],
) {
    for s in 13..16 {
        combine(y_stage, y, h, A[s - 1], k);
        system.rhs(x + C[s] * h, y_stage, &mut k[s]);
    }
    let n = y.len();
    for i in 0..n {
        let diff = y_new[i] - y[i];
        let bspl = h * k[0][i] - diff;
        dense[0][i] = y[i];
        dense[1][i] = diff;
        dense[2][i] = bspl;
        dense[3][i] = diff - h * k[12][i] - bspl;
    }
    for (r, d) in D.iter().enumerate() {
        let out = &mut dense[4 + r];
        out.fill(0.0);
        for (j, c) in d.iter().enumerate() {
            if *c != 0.0 {
                for (o, v) in out.iter_mut().zip(&k[j]) {
                    *o += c * v;
                }
            }
        }
        out.iter_mut().for_each(|o| *o *= h);
    }
}

/// Evaluates the continuous extension at `theta ∈ [0, 1]` of the step.
#[inline(always)]
fn interpolate(dense: &[Vec<f64>], theta: f64, out: &mut [f64]) {
    let t1 = 1.0 - theta;
    for (i, o) in out.iter_mut().enumerate() {
        let r = |j: usize| dense[j][i];
        *o = r(0)
            + theta
                * (r(1)
                    + t1 * (r(2)
                        + theta
                            * (r(3) + t1 * (r(4) + theta * (r(5) + t1 * (r(6) + theta * r(7)))))));
    }
}

/// Hairer's initial step-size guess for an 8th-order method.
#[allow(clippy::too_many_arguments)]
fn initial_step(
    system: &dyn OdeSystem,
    x: f64,
    y: &[f64],
    f0: &[f64],
    tol: Tolerances,
    h_max: f64,
    y1: &mut [f64],
    f1: &mut [f64],
) -> f64 {
    let sc = |v: f64| tol.atol + v.abs() * tol.rtol;
    let d0: f64 = y.iter().map(|v| (v / sc(*v)).powi(2)).sum();
    let d1: f64 = y.iter().zip(f0).map(|(v, f)| (f / sc(*v)).powi(2)).sum();
    let mut h0 = if d0 < 1e-10 || d1 < 1e-10 {
        1e-6
    } else {
        0.01 * (d0 / d1).sqrt()
    };
    h0 = h0.min(h_max);
    for ((a, v), f) in y1.iter_mut().zip(y).zip(f0) {
        *a = v + h0 * f;
    }
    system.rhs(x + h0, y1, f1);
    let d2: f64 = y
        .iter()
        .zip(f0)
        .zip(f1.iter())
        .map(|((v, a), b)| ((b - a) / sc(*v)).powi(2))
        .sum::<f64>()
        .sqrt()
        / h0;
    let h1 = if d1.sqrt().max(d2) <= 1e-15 {
        f64::max(1e-6, h0 * 1e-3)
    } else {
        (0.01 / d1.sqrt().max(d2)).powf(0.125)
    };
    (100.0 * h0).min(h1).min(h_max)
}

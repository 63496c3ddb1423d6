#!/usr/bin/env python3
"""Time dataset generation: chaoscast's `generate` command against scipy's solve_ivp(DOP853).

Both integrate the same system from the same kind of start (the default initial state plus a
1e-3 Gaussian perturbation), discard the same transient, then record the same samples by dense
output (`t_eval`) with the same tolerances. Prints one table with wall times, peak memory and the
ratio. Not run by CI.

    python3 -m venv benches/.venv && benches/.venv/bin/pip install -r benches/requirements.txt
    cargo build --release
    benches/.venv/bin/python benches/compare_scipy.py [--system thomas] [--samples 10000]
        [--trajectories N]

With --trajectories N, chaoscast writes an ensemble of N trajectories in one call (in parallel
over the cores) and scipy integrates the N trajectories in a pool of min(N, cores) processes.
"""

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

# numpy and scipy are imported only after chaoscast has run: a child forked from a Python process
# that already holds them would report their memory as its own peak.


def lorenz96_two_scale(K=36, J=10, h=1.0, b=10.0, c=10.0, F=20.0):
    import numpy as np

    coupling = h * c / b
    cb = c * b
    # Cyclic neighbours as precomputed index arrays (faster than np.roll).
    ks = np.arange(K)
    xm1, xp1, xm2 = (ks - 1) % K, (ks + 1) % K, (ks - 2) % K
    js = np.arange(K * J)
    yp1, yp2, ym1 = (js + 1) % (K * J), (js + 2) % (K * J), (js - 1) % (K * J)

    def rhs(_t, state):
        x, y = state[:K], state[K:]
        dx = x[xm1] * (x[xp1] - x[xm2]) - x + F - coupling * y.reshape(K, J).sum(axis=1)
        dy = -cb * y[yp1] * (y[yp2] - y[ym1]) - c * y + coupling * np.repeat(x, J)
        return np.concatenate([dx, dy])

    y0 = np.zeros(K * (1 + J))
    y0[:K] = F
    y0[0] += 0.01
    return rhs, y0


def thomas(a=1.85, b=10.0):
    import numpy as np

    def rhs(_t, s):
        x, y, z = s
        return [-a * x + b * np.sin(y), -a * y + b * np.sin(z), -a * z + b * np.sin(x)]

    return rhs, np.array([2.199442, 2.3634225, 3.220197])


SYSTEMS = {
    # name: (builder, dt, transient)
    "lorenz96-two-scale": (lorenz96_two_scale, 0.1, 10.0),
    "thomas": (thomas, 0.0497, 100.0),
}


def scipy_trajectory(args):
    """One trajectory: (elapsed seconds, samples, evaluations, peak MiB); the ensemble's k-th is
    seeded k."""
    import numpy as np
    from scipy.integrate import solve_ivp

    system, samples, tol, k = args
    builder, dt, transient = SYSTEMS[system]
    rhs, y0 = builder()
    y0 = y0 + 1e-3 * np.random.default_rng(k).standard_normal(y0.shape)
    start = time.perf_counter()
    warm = solve_ivp(rhs, (0.0, transient), y0, method="DOP853", rtol=tol, atol=tol)
    t_eval = transient + dt * np.arange(samples)
    sol = solve_ivp(rhs, (transient, t_eval[-1]), warm.y[:, -1], method="DOP853",
                    rtol=tol, atol=tol, t_eval=t_eval)
    elapsed = time.perf_counter() - start
    assert sol.success, sol.message
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return elapsed, sol.y.T, sol.nfev + warm.nfev, peak_mib


def run_scipy(system, samples, tol, trajectories):
    """The ensemble's wall time, peak memory (of the largest process), first trajectory and
    right-hand-side evaluations."""
    jobs = [(system, samples, tol, k) for k in range(trajectories)]
    start = time.perf_counter()
    if trajectories == 1:
        results = [scipy_trajectory(jobs[0])]
    else:
        import multiprocessing

        processes = min(trajectories, os.cpu_count() or 1)
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            results = pool.map(scipy_trajectory, jobs)
    elapsed = time.perf_counter() - start
    peak_mib = max(r[3] for r in results)
    nfev = sum(r[2] for r in results)
    return elapsed, peak_mib, results[0][1], nfev


def run_chaoscast(binary, system, samples, tol, trajectories):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "data.parquet")
        cmd = [binary, "generate", system, "--samples", str(samples), "--rtol", str(tol),
               "--atol", str(tol), "--output", out, "--quiet"]
        if trajectories > 1:
            cmd += ["--trajectories", str(trajectories)]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        elapsed = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return elapsed, peak_mib


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", default="lorenz96-two-scale", choices=sorted(SYSTEMS))
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--tol", type=float, default=1e-10)
    parser.add_argument("--trajectories", type=int, default=1)
    parser.add_argument("--binary", default="target/release/chaoscast")
    args = parser.parse_args()
    n = args.trajectories

    ours, ours_mem = run_chaoscast(args.binary, args.system, args.samples, args.tol, n)
    theirs, theirs_mem, values, nfev = run_scipy(args.system, args.samples, args.tol, n)
    ensemble = f", {n} trajectories" if n > 1 else ""
    print(f"{args.system}, {args.samples} samples{ensemble}, rtol = atol = {args.tol:g}, "
          "transient included")
    print(f"| tool | wall time | peak memory (RSS) |")
    print(f"| --- | --- | --- |")
    import scipy

    print(f"| scipy {scipy.__version__} solve_ivp(DOP853) | {theirs:.2f} s | {theirs_mem:.0f} MiB |")
    print(f"| chaoscast generate (incl. Parquet write) | {ours:.2f} s | {ours_mem:.0f} MiB |")
    print(f"ratio: chaoscast is {theirs / ours:.1f}x faster "
          f"(scipy: {nfev} right-hand-side evaluations; mean of first variable {values[:, 0].mean():.3f})")


if __name__ == "__main__":
    sys.exit(main())

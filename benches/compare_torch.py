#!/usr/bin/env python3
"""Time one training step of each model: chaoscast (Burn) against the same step in PyTorch.

"Ours" is the criterion group `train_step` of the bench binary (`benches/main.rs`); every config
runs in its own process, both for us and for PyTorch, so that each peak memory figure belongs to
one config. Prints one Markdown table (median step time, ratio, peak memory) and, per model, what
ASAM costs over a plain step. Not run by CI.

    python3 -m venv benches/.venv && benches/.venv/bin/pip install -r benches/requirements.txt
    benches/.venv/bin/python benches/compare_torch.py [--device cpu|cuda] [--threads 2] [--paper]
        [--ours PATH] [--only-torch] [--only REGEX] [--steps N] [--out FILE.md]
    benches/.venv/bin/python benches/compare_torch.py --quality [--model gru|lstm] [--seeds 0,1,2]
        [--recipe datasets/thomas.toml] [--long 164] [--chaoscast PATH] [-- TRAIN FLAGS]

--quality     forecast quality instead of step times: for each seed, `chaoscast train --model M`
              (the default recipe) and `eval --rollout 164`, then benches/quality_torch.py, the
              PyTorch twin, with the settings read from the run's config.json (width, epochs,
              learning rate, noise, clipping, stride, batch); one table of test NRMSE, VPT and
              training time (the sum of the epochs' times, validation included, on both sides).

--ours PATH   the bench executable; by default `cargo bench --bench main --no-run` builds it
              (with `--features cuda` for `--device cuda`) and its path is taken from Cargo's
              JSON messages.
--paper       adds the paper sizes (batch 256, hidden 512, ...); slow on a CPU.
--only REGEX  keeps the configs whose id matches, e.g. `--paper --only 'b256'`.
--only-torch  skips our side (its columns read n/a), so the script runs without a Rust build.
--steps N     PyTorch steps timed after 3 warm-up steps (default: 20 for the small sizes on a
              CPU, 5 for the paper sizes on a CPU, 50 on the GPU); criterion picks its own count.

Peak memory is the peak resident set (RSS) of the config's whole process on the CPU, so both
columns include their runtime: the bench binary; the Python interpreter and libtorch, whose cost
alone (a bare `import torch`) the report's first line gives. On the GPU PyTorch reports
`torch.cuda.max_memory_allocated()` (its tensors, not the CUDA context) and our GPU memory is not
measured (n/a). PyTorch runs in true float32 on the GPU (TF32 off).

This top-level process imports neither torch nor numpy: on Linux a child's `ru_maxrss` starts at
the RSS of the process it was forked from, so a fat parent would inflate every child's peak.
"""

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.abspath(__file__)

LOOKBACK = 150
VARS = 3
HORIZON = 41
MODELS = ("lstm", "gru", "fdn", "transformer")
WARMUP_STEPS = 3
RESULT_TAG = "COMPARE_TORCH_RESULT "


# ------------------------------------------------------------------------------------------------
# Configs
# ------------------------------------------------------------------------------------------------


def config_ids(paper):
    """Every row, in table order. The paper sizes only with `paper`."""
    ids = []
    for cell in ("lstm", "gru"):
        ids += [f"bare-{cell}/b64-h128", f"bare-{cell}-unfused/b64-h128"]
    if paper:
        ids += ["bare-lstm/b256-h512", "bare-gru/b256-h512"]
    sizes = ("small", "paper") if paper else ("small",)
    for model in MODELS:
        for size in sizes:
            ids += [f"{model}/{size}-plain", f"{model}/{size}-asam"]
    return ids


def torch_twin(config_id):
    """The PyTorch config timed for a row: our unfused bare cells compare with PyTorch's one
    (fused) layer, so their rows reuse the fused row's PyTorch numbers."""
    name, size = config_id.split("/")
    return f"{name.removesuffix('-unfused')}/{size}"


def is_paper(config_id):
    return config_id.endswith("/b256-h512") or "/paper-" in config_id


# ------------------------------------------------------------------------------------------------
# Child processes and their peak memory
# ------------------------------------------------------------------------------------------------


def run_measured(cmd, env, stdout):
    """Runs `cmd` to its end; returns (exit code, what it wrote to stdout if `stdout` is
    subprocess.PIPE, else None, its peak RSS in MiB)."""
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=stdout)
    output = proc.stdout.read().decode(errors="replace") if stdout == subprocess.PIPE else None
    # wait4 instead of proc.wait(): it hands back the child's own resource usage.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: keep Popen from waiting again
    if proc.stdout is not None:
        proc.stdout.close()
    return proc.returncode, output, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def thread_env(threads):
    env = dict(os.environ)
    for var in ("RAYON_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


# ------------------------------------------------------------------------------------------------
# Ours: the criterion bench binary
# ------------------------------------------------------------------------------------------------


def build_bench(device):
    """Builds the bench binary with Cargo and returns its path."""
    cmd = ["cargo", "bench", "--bench", "main", "--no-run", "--message-format=json"]
    env = dict(os.environ)
    if device == "cuda":
        cmd += ["--features", "cuda"]
        env.setdefault("CUDARC_CUDA_VERSION", "13000")  # as Cargo.toml's `cuda` feature asks
    log(f"building the bench binary: {' '.join(cmd)}")
    done = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"cargo failed (exit {done.returncode}); use --ours PATH or --only-torch")
    for line in done.stdout.splitlines():
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        target = msg.get("target") or {}
        if (msg.get("reason") == "compiler-artifact" and target.get("name") == "main"
                and "bench" in target.get("kind", []) and msg.get("executable")):
            return msg["executable"]
    sys.exit("cargo built no bench executable named `main`; use --ours PATH")


def run_ours(binary, config_id, args):
    """Median step time (ms) and peak RSS (MiB, None on the GPU) of one criterion benchmark;
    None for the time where criterion left no estimate."""
    env = thread_env(args.threads)
    env["CHAOSCAST_BENCH_DEVICE"] = args.device
    if args.paper:
        env["CHAOSCAST_BENCH_PAPER"] = "1"
    else:
        env.pop("CHAOSCAST_BENCH_PAPER", None)
    home = tempfile.mkdtemp(prefix="compare-torch-criterion-")
    try:
        env["CRITERION_HOME"] = home
        # The id holds only [a-z0-9/-], so it needs no regex escaping. Criterion's report goes to
        # our stderr, keeping stdout for the table.
        cmd = [binary, "--bench", f"^train_step/{config_id}$"]
        code, _, peak = run_measured(cmd, env, stdout=sys.stderr.fileno())
        if code != 0:
            log(f"ours {config_id}: the bench exited with {code}")
        median_ns = read_estimate(home, config_id)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    return (None if median_ns is None else median_ns / 1e6,
            None if args.device == "cuda" else peak)


def read_estimate(home, config_id):
    """`median.point_estimate` (ns) of criterion's `new/estimates.json` for `config_id`."""
    # Criterion makes one folder per id part: train_step/bare-lstm/b64-h128/new/estimates.json.
    path = os.path.join(home, "train_step", *config_id.split("/"), "new", "estimates.json")
    if not os.path.exists(path):
        # Criterion may rename a folder (it sanitises some characters); with one benchmark per
        # run, any lone estimate under this home is ours.
        found = [os.path.join(root, "estimates.json") for root, _, files in os.walk(home)
                 if "estimates.json" in files and os.path.basename(root) == "new"]
        if len(found) != 1:
            log(f"ours {config_id}: no criterion estimate under {home}")
            return None
        path = found[0]
    try:
        with open(path) as f:
            return float(json.load(f)["median"]["point_estimate"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        log(f"ours {config_id}: unreadable {path}: {err}")
        return None


# ------------------------------------------------------------------------------------------------
# PyTorch: runs inside `--torch-one ID` children (the only place torch is imported)
# ------------------------------------------------------------------------------------------------


def torch_models():
    """The PyTorch modules, defined only once torch is imported."""
    import math

    import torch
    from torch import nn
    from torch.nn import functional as F

    class Bare(nn.Module):
        """One LSTM/GRU layer and a linear head on the last hidden state."""

        def __init__(self, cell, hidden):
            super().__init__()
            rnn = nn.LSTM if cell == "lstm" else nn.GRU
            self.rnn = rnn(VARS, hidden, batch_first=True)
            self.head = nn.Linear(hidden, VARS)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.head(out[:, -1])

    class Recurrent(nn.Module):
        """One LSTM/GRU layer, dot-product attention from the last state over all states, and a
        linear head on [context, last state] to the whole horizon."""

        def __init__(self, cell, hidden):
            super().__init__()
            rnn = nn.LSTM if cell == "lstm" else nn.GRU
            self.rnn = rnn(VARS, hidden, batch_first=True)
            self.query = nn.Linear(hidden, hidden)
            self.key = nn.Linear(hidden, hidden)
            self.value = nn.Linear(hidden, hidden)
            self.head = nn.Linear(2 * hidden, HORIZON * VARS)
            self.scale = 1.0 / math.sqrt(hidden)

        def forward(self, x):
            states, _ = self.rnn(x)  # [B, L, H]
            last = states[:, -1]  # [B, H]
            q = self.query(last).unsqueeze(1)  # [B, 1, H]
            k = self.key(states)
            v = self.value(states)
            scores = torch.bmm(q, k.transpose(1, 2)) * self.scale  # [B, 1, L]
            context = torch.bmm(torch.softmax(scores, dim=2), v).squeeze(1)  # [B, H]
            out = self.head(torch.cat([context, last], dim=-1))
            return out.reshape(x.shape[0], HORIZON, VARS)

    class FdnBranch(nn.Module):
        def __init__(self, channels, length, blocks, kernel):
            super().__init__()
            self.lift = nn.Conv1d(1, channels, 1)
            self.pointwise = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in range(blocks))
            self.temporal = nn.ModuleList(
                nn.Conv1d(channels, channels, kernel, padding=kernel // 2) for _ in range(blocks))
            self.head = nn.Linear(channels * length, HORIZON)

        def forward(self, x):  # [N, 1, len]
            h = self.lift(x)
            for pointwise, temporal in zip(self.pointwise, self.temporal):
                h = F.gelu(temporal(pointwise(h))) + h
            return self.head(h.flatten(1))  # [N, horizon]

    class Fdn(nn.Module):
        """Channel-independent FDN: three segments of the window (the oldest half, then two
        quarters), each with its own branch of 2, 3 and 4 blocks; the forecasts are averaged."""

        def __init__(self, channels, kernel=3, blocks=2):
            super().__init__()
            half, three_quarters = LOOKBACK // 2, LOOKBACK * 3 // 4
            self.bounds = [0, half, three_quarters, LOOKBACK]  # [0, 75, 112, 150]
            self.branches = nn.ModuleList(
                FdnBranch(channels, self.bounds[s + 1] - self.bounds[s], blocks + s, kernel)
                for s in range(3))

        def forward(self, x):  # [B, L, D]
            batch = x.shape[0]
            series = x.transpose(1, 2).reshape(batch * VARS, 1, LOOKBACK)
            outs = [branch(series[..., lo:hi]) for branch, lo, hi
                    in zip(self.branches, self.bounds, self.bounds[1:])]
            mean = torch.stack(outs).mean(dim=0)  # [B*D, horizon]
            return mean.reshape(batch, VARS, HORIZON).transpose(1, 2)

    class Transformer(nn.Module):
        """Patch tokens, input projection, sinusoidal positions, post-norm GELU encoder, the last
        token to a linear head over the whole horizon."""

        def __init__(self, d_model, d_ff, patch, heads=4, layers=2):
            super().__init__()
            self.patch = patch
            tokens = LOOKBACK // patch
            self.input = nn.Linear(VARS * patch, d_model)
            pos = torch.arange(tokens, dtype=torch.float32).unsqueeze(1)
            rate = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32)
                             * (-math.log(10000.0) / d_model))
            pe = torch.zeros(tokens, d_model)
            pe[:, 0::2] = torch.sin(pos * rate)
            pe[:, 1::2] = torch.cos(pos * rate)
            self.register_buffer("pe", pe)
            layer = nn.TransformerEncoderLayer(d_model, heads, d_ff, dropout=0.0,
                                               activation="gelu", batch_first=True,
                                               norm_first=False)
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.head = nn.Linear(d_model, HORIZON * VARS)

        def forward(self, x):  # [B, L, D]
            batch = x.shape[0]
            tokens = x.reshape(batch, LOOKBACK // self.patch, self.patch * VARS)
            h = self.encoder(self.input(tokens) + self.pe)
            return self.head(h[:, -1]).reshape(batch, HORIZON, VARS)

    return Bare, Recurrent, Fdn, Transformer


def build_torch_config(config_id, device):
    """(model, batch, target shape, optimizer, step kind) for one config."""
    import torch

    Bare, Recurrent, Fdn, Transformer = torch_models()
    name, size = config_id.split("/")
    if name.startswith("bare-"):
        batch, hidden = (256, 512) if size == "b256-h512" else (64, 128)
        model = Bare(name.removeprefix("bare-"), hidden)
        return (model.to(device), batch, (batch, VARS),
                torch.optim.SGD(model.parameters(), lr=0.01), "plain")
    preset, kind = size.split("-")
    paper = preset == "paper"
    batch = 256 if paper else 64
    if name in ("lstm", "gru"):
        model = Recurrent(name, 512 if paper else 128)
    elif name == "fdn":
        model = Fdn(125 if paper else 32)
    elif name == "transformer":
        model = Transformer(*((128, 256, 1) if paper else (32, 64, 10)))
    else:
        raise ValueError(f"unknown config {config_id}")
    model = model.to(device)
    return (model, batch, (batch, HORIZON, VARS),
            torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8), kind)


def asam_step(params, loss_fn, optimizer, rho=1.0, eta=0.01):
    """One ASAM step (Kwon et al. 2021): gradient at w, climb to w + eps with the element-wise
    scale T = |w| + eta (1 for biases and other 1-D parameters), gradient there, back to w, and
    the optimizer step with the second gradient."""
    import torch

    optimizer.zero_grad()
    loss_fn().backward()
    with torch.no_grad():
        scaled = []  # (param, T or None for T = 1, grad)
        for p in params:
            t = p.abs().add_(eta) if p.dim() >= 2 else None
            scaled.append((p, t, p.grad))
        norm = torch.sqrt(sum(((g if t is None else t * g) ** 2).sum() for _, t, g in scaled))
        factor = rho / (norm + 1e-12)
        eps = [(g if t is None else t * t * g) * factor for _, t, g in scaled]
        for p, e in zip(params, eps):
            p.add_(e)
    optimizer.zero_grad()
    loss_fn().backward()
    with torch.no_grad():
        for p, e in zip(params, eps):
            p.sub_(e)
    optimizer.step()


def torch_info(args):
    """Prints the torch version and GPU name as one tagged JSON line: run alone in a child, its
    peak RSS is what `import torch` costs before any model."""
    import torch

    cuda = args.device == "cuda" and torch.cuda.is_available()
    info = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name() if cuda else None}
    print(RESULT_TAG + json.dumps(info), flush=True)


def torch_one(args):
    """Times one config in this process; prints its result as one tagged JSON line."""
    import torch

    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("--device cuda, but torch sees no CUDA device")
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    if cuda:  # compare float32 with float32: no TF32 in matmuls, convolutions or cuDNN RNNs
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)

    model, batch, target_shape, optimizer, kind = build_torch_config(args.torch_one, device)
    x = torch.randn(batch, LOOKBACK, VARS, device=device)
    y = torch.randn(*target_shape, device=device)
    params = [p for p in model.parameters() if p.requires_grad]

    def loss_fn():
        return torch.nn.functional.mse_loss(model(x), y)

    def step():
        if kind == "asam":
            asam_step(params, loss_fn, optimizer)
        else:
            optimizer.zero_grad()
            loss_fn().backward()
            optimizer.step()

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    steps = args.steps or (50 if cuda else 5 if is_paper(args.torch_one) else 20)
    for _ in range(WARMUP_STEPS):
        step()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)

    result = {
        "ms": statistics.median(times) * 1e3,
        "steps": steps,
        "cuda_peak_mib": torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
    }
    print(RESULT_TAG + json.dumps(result), flush=True)


def run_torch_child(what, extra, args):
    """Runs this script with `extra` arguments in a fresh child; returns its tagged JSON result
    with `rss_mib` (the child's peak RSS) added, or None if it failed."""
    cmd = [sys.executable, SCRIPT, *extra, "--device", args.device, "--threads", str(args.threads)]
    code, output, peak = run_measured(cmd, thread_env(args.threads), stdout=subprocess.PIPE)
    lines = [line for line in output.splitlines() if line.startswith(RESULT_TAG)]
    if code != 0 or not lines:
        log(f"PyTorch {what}: the child exited with {code} and no result")
        return None
    result = json.loads(lines[-1][len(RESULT_TAG):])
    result["rss_mib"] = peak
    return result


def run_torch(config_id, args):
    """Times one config in a fresh child: its result dict with `peak_mib` added, or None."""
    extra = ["--torch-one", config_id] + (["--steps", str(args.steps)] if args.steps else [])
    result = run_torch_child(config_id, extra, args)
    if result:
        result["peak_mib"] = result["cuda_peak_mib"] if args.device == "cuda" else result["rss_mib"]
    return result


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def log(message):
    print(message, file=sys.stderr, flush=True)


def fmt_ms(value):
    if value is None:
        return "n/a"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def fmt_ratio(num, den):
    return "n/a" if num is None or den is None or den == 0 else f"{num / den:.2f}"


def fmt_mib(value):
    return "n/a" if value is None else f"{value:.0f}"


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def report(rows, info, args):
    """The Markdown lines: a context line, the table and the ASAM cost per model."""
    info = info or {}
    steps = args.steps or ("50" if args.device == "cuda" else
                           "20 (paper sizes: 5)" if args.paper else "20")
    hardware = info.get("gpu") if args.device == "cuda" else cpu_name()
    memory = ("PyTorch peak = torch.cuda.max_memory_allocated(), ours n/a on the GPU"
              if args.device == "cuda" else
              f"peak = process RSS (a bare `import torch` alone: "
              f"{fmt_mib(info.get('rss_mib'))} MiB)")
    lines = [
        f"device: {args.device} ({hardware or 'unknown'}), threads: {args.threads}, "
        f"torch {info.get('torch', 'unknown')}; PyTorch: median of {steps} steps after "
        f"{WARMUP_STEPS} warm-up, ours: criterion median; "
        f"{memory}",
        "",
        "| config | ours (ms) | PyTorch (ms) | ours / PyTorch | ours peak MiB | PyTorch peak MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for cid, (ours_ms, ours_mib, torch_ms, torch_mib) in rows.items():
        lines.append(f"| {cid} | {fmt_ms(ours_ms)} | {fmt_ms(torch_ms)} | "
                     f"{fmt_ratio(ours_ms, torch_ms)} | {fmt_mib(ours_mib)} | "
                     f"{fmt_mib(torch_mib)} |")
    lines.append("")
    sizes = ("small", "paper") if args.paper else ("small",)
    for model in MODELS:
        parts = []
        for size in sizes:
            plain, asam = rows.get(f"{model}/{size}-plain"), rows.get(f"{model}/{size}-asam")
            if plain is None or asam is None:
                continue  # left out by --only
            parts.append(f"{size}: ours {fmt_ratio(asam[0], plain[0])}, "
                         f"PyTorch {fmt_ratio(asam[2], plain[2])}")
        if parts:
            lines.append(f"- {model} asam / plain: " + "; ".join(parts))
    return lines


# ------------------------------------------------------------------------------------------------
# Forecast quality side by side: chaoscast's default recipe and its PyTorch twin (quality_torch.py)
# ------------------------------------------------------------------------------------------------


def build_cli():
    log("building chaoscast: cargo build --release")
    if subprocess.run(["cargo", "build", "--release"], cwd=REPO).returncode != 0:
        sys.exit("cargo build failed")
    return os.path.join(REPO, "target", "release", "chaoscast")


def check_twin_recipe(cfg):
    """Exits unless the run's recipe is one benches/quality_torch.py implements."""
    model = cfg["model"]
    wanted = {
        "one recurrent layer": model.get("layers") == 1,
        "the autoregressive decoder": model.get("decoder") == "autoregressive",
        "the window loss": cfg.get("window_loss") is True,
        "teacher forcing": cfg["strategy"]["schedule"] == "constant" and cfg["strategy"]["start"] == 1.0,
        "Adam": cfg["optimizer"] == "adam",
        "no SAM": cfg["sharpness"]["kind"] == "none",
        "cosine annealing to 0": cfg.get("schedule", {"kind": "cosine"})["kind"] == "cosine"
        and cfg["lr_min"] == 0.0,
        "no closed-loop fine-tuning": cfg.get("closed_loop") is None,
        "no bio mechanisms": not any(cfg.get("bio", {}).get(k) for k in
                                     ("fuzzy_lr", "rejuvenation", "splitting")),
        "no early stop before the last epoch": cfg["patience"] >= cfg["epochs"],
    }
    missing = [what for what, ok in wanted.items() if not ok]
    if missing:
        sys.exit("the PyTorch twin implements only the default recurrent recipe; this run lacks "
                 + ", ".join(missing))


def quality(args):
    """Trains chaoscast's default recipe and the PyTorch twin with the same settings (read from
    the run's config.json) for each seed, one after the other, and prints one table."""
    binary = os.path.abspath(args.chaoscast) if args.chaoscast else build_cli()
    work = tempfile.mkdtemp(prefix="compare-torch-quality-")
    data = os.path.join(work, "data.parquet")
    csv = os.path.join(work, "data.csv")
    for path, fmt in ((data, "parquet"), (csv, "csv")):
        subprocess.run([binary, "--quiet", "generate", args.recipe, "--format", fmt, "-o", path],
                       cwd=REPO, check=True)
    env = thread_env(args.threads)
    rows = []

    def render(rows):
        """The table so far, also written to --out row by row (a long run cut short keeps what
        landed)."""
        text = quality_table(args, rows)
        if args.out:
            with open(args.out + ".tmp", "w") as f:
                f.write(text)
            os.replace(args.out + ".tmp", args.out)
        return text

    for seed in args.seeds:
        run = os.path.join(work, f"{args.model}-seed-{seed}")
        cmd = [binary, "--quiet", "train", "--data", data, "--model", args.model,
               "--seed", str(seed), "-o", run] + args.extra
        log("ours: " + " ".join(cmd))
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, env=env, check=True)
        wall = time.perf_counter() - t0
        subprocess.run([binary, "--quiet", "eval", run, "--rollout", str(args.long)],
                       cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(run, "report.json")) as f:
            report = json.load(f)
        with open(os.path.join(run, "config.json")) as f:
            cfg = json.load(f)["train"]
        with open(os.path.join(run, "metrics.csv")) as f:
            header = f.readline().strip().split(",")
            seconds = sum(float(line.split(",")[header.index("seconds")]) for line in f)
        long = report.get("rollout") or {}
        rows.append(("chaoscast", cfg["epochs"], seed, report["nrmse_median"],
                     report["nrmse_mean"], report["vpt_median_steps"],
                     long.get("vpt_median_steps"), seconds, wall))
        render(rows)
        model = cfg["model"]
        check_twin_recipe(cfg)
        for epochs in args.torch_epochs or [cfg["epochs"]]:
            twin = [sys.executable, os.path.join(REPO, "benches", "quality_torch.py"), "--csv", csv,
                    "--cell", args.model, "--hidden", str(model["hidden"]),
                    "--lookback", str(cfg["lookback"]), "--horizon", str(model["horizon"]),
                    "--stride", str(cfg["stride"]), "--noise", str(cfg["input_noise"]),
                    "--lr", str(cfg["lr"]), "--weight-decay", str(cfg["weight_decay"]),
                    "--clip", str(cfg.get("clip_grad") or 0), "--batch", str(cfg["batch_size"]),
                    "--epochs", str(epochs), "--seed", str(seed),
                    "--threads", str(args.threads), "--eval-horizon", str(args.long), "--quiet"]
            log("PyTorch: " + " ".join(twin[1:]))
            t0 = time.perf_counter()
            done = subprocess.run(twin, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True,
                                  check=True)
            wall = time.perf_counter() - t0
            result = json.loads(next(line for line in done.stdout.splitlines()
                                     if line.startswith("RESULT "))[len("RESULT "):])
            rows.append(("PyTorch", epochs, seed, result["test_nrmse_median"],
                         result["test_nrmse_mean"], result["test_vpt_median"],
                         result["long_vpt_median"], result["train_seconds"], wall))
            render(rows)
    sys.stdout.write(render(rows))
    shutil.rmtree(work, ignore_errors=True)


def quality_table(args, rows):
    """The side-by-side table of `quality` as Markdown."""
    lyapunov_step = None
    with open(os.path.join(REPO, args.recipe) if not os.path.isabs(args.recipe) else args.recipe) as f:
        text = f.read()
    found = re.search(r"^lyapunov\s*=\s*([0-9.eE+-]+)", text, re.M)
    dt = re.search(r"^dt\s*=\s*([0-9.eE+-]+)", text, re.M)
    if found and dt:
        lyapunov_step = float(found.group(1)) * float(dt.group(1))
    lines = [f"{args.model.upper()}, the default recipe on {args.recipe}, {args.threads} threads each "
             f"({cpu_name()}); VPT at H = {args.long} in steps"
             + (" (Lyapunov times)" if lyapunov_step else ""), "",
             "| side | epochs | seed | median NRMSE | mean NRMSE | median VPT | median VPT at H = "
             f"{args.long} | training (epochs incl. validation) | wall |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for side, epochs, seed, med, mean, vpt, long_vpt, seconds, wall in rows:
        lt = f" ({long_vpt * lyapunov_step:.2f})" if lyapunov_step and long_vpt is not None else ""
        long_text = "—" if long_vpt is None else f"{long_vpt:g}{lt}"
        lines.append(f"| {side} | {epochs} | {seed} | {med:.4f} | {mean:.4f} | {vpt:g} | {long_text} | "
                     f"{seconds:.0f} s | {wall:.0f} s |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=2,
                        help="CPU threads for both sides "
                             "(RAYON_NUM_THREADS, torch.set_num_threads)")
    parser.add_argument("--paper", action="store_true", help="add the paper sizes")
    parser.add_argument("--ours", metavar="PATH", help="the bench executable (default: build it)")
    parser.add_argument("--only-torch", action="store_true", help="skip our side")
    parser.add_argument("--steps", type=int, help="PyTorch steps timed per config")
    parser.add_argument("--out", metavar="FILE.md", help="also write the report here")
    parser.add_argument("--only", metavar="REGEX",
                        help="only the configs whose id matches (e.g. 'bare-.*/b256')")
    parser.add_argument("--quality", action="store_true",
                        help="forecast quality instead of step times: chaoscast's default "
                             "recipe and its PyTorch twin (benches/quality_torch.py)")
    parser.add_argument("--model", choices=("gru", "lstm"), default="gru",
                        help="with --quality: the recurrent model")
    parser.add_argument("--recipe", default="datasets/thomas.toml", help="with --quality")
    parser.add_argument("--seeds", type=lambda v: [int(s) for s in v.split(",")], default=[0],
                        help="with --quality: comma-separated seeds (default 0)")
    parser.add_argument("--long", type=int, default=164,
                        help="with --quality: the long closed-loop horizon scored (default 164)")
    parser.add_argument("--chaoscast", metavar="PATH",
                        help="with --quality: the chaoscast binary (default: build it)")
    parser.add_argument("--torch-epochs", type=lambda v: [int(s) for s in v.split(",")],
                        help="with --quality: the twin's epoch counts, comma-separated, one twin "
                             "run each (default: the run's; fewer gives it about the training "
                             "time of ours)")
    parser.add_argument("extra", nargs="*",
                        help="with --quality: more `chaoscast train` flags, after --")
    # Internal: what the children run.
    parser.add_argument("--torch-one", metavar="ID", help=argparse.SUPPRESS)
    parser.add_argument("--torch-info", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads < 1 or (args.steps is not None and args.steps < 1):
        parser.error("--threads and --steps must be at least 1")

    if args.torch_one:
        return torch_one(args)
    if args.torch_info:
        return torch_info(args)
    if args.quality:
        return quality(args)

    binary = None
    if not args.only_torch:
        binary = os.path.abspath(args.ours) if args.ours else build_bench(args.device)
        if not os.access(binary, os.X_OK):
            sys.exit(f"not an executable: {binary}")

    info = run_torch_child("import", ["--torch-info"], args)
    rows = {}
    torch_results = {}
    pattern = re.compile(args.only) if args.only else None
    for cid in config_ids(args.paper):
        if pattern and not pattern.search(cid):
            continue
        ours_ms = ours_mib = None
        if binary:
            log(f"ours    {cid} ...")
            ours_ms, ours_mib = run_ours(binary, cid, args)
        twin = torch_twin(cid)
        if twin not in torch_results:
            log(f"PyTorch {twin} ...")
            torch_results[twin] = run_torch(twin, args)
        result = torch_results[twin]
        rows[cid] = (ours_ms, ours_mib,
                     result["ms"] if result else None, result["peak_mib"] if result else None)

    text = "\n".join(report(rows, info, args)) + "\n"
    sys.stdout.write(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    sys.exit(main())

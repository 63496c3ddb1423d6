#!/usr/bin/env python3
"""A PyTorch twin of chaoscast's default recurrent recipe: train a GRU (or LSTM) one step ahead
on every step of each training window, then forecast in closed loop and score it by NRMSE and
valid prediction time, all written here from SPEC.md §3 without chaoscast's code.

The recipe (the issue's "plain PyTorch GRU", which chaoscast's `train --model gru` mirrors):

- z-score every variable with the mean and (population) standard deviation of the first 80 % of
  the series; chronological split 80/10/10; windows of lookback + horizon steps inside each part.
- Training windows at stride `--stride` (default 5). Each window is one sequence of
  lookback + horizon steps: the inputs are steps 0 .. T-2 plus Gaussian noise of `--noise`
  (default 0.01, z-units), the targets steps 1 .. T-1, from a zero state. One recurrent layer of
  `--hidden` units and a linear head that predicts the change: pred_{t+1} = input_t + head(h_t).
  MSE over every step of every window.
- Adam (`--lr`, default 3e-3; `--weight-decay`, default 0, coupled L2 as torch.optim.Adam),
  cosine annealing per step over the run to 0, gradient-norm clipping at `--clip` (default 1),
  batch `--batch` (default 64), `--epochs` (default 60), seed `--seed`.
- After every epoch the closed-loop validation median NRMSE on the validation windows at
  `--val-stride` (default: the training stride, as chaoscast cuts every split's windows at the
  run's stride); the best epoch's weights are kept.
- Forecast: warm up on the lookback window from a zero state, then run closed loop: each
  forecast is the next input.
- NRMSE (Teutsch & Mäder): per window and step e = sqrt(mean_d err^2) / mean_d sigma_d on
  de-normalised values, sigma_d the training split's std; a window's NRMSE is the mean of e over
  the horizon, the reported number the median over test windows. VPT: the 0-based index of the
  first step with e > 0.4, or the horizon if none.

Prints one JSON line (after the tag RESULT) with the test median NRMSE, VPT and the training time.
Data: a CSV of `chaoscast generate ... --format csv` (column t, then the variables), or with
`--recipe` the script asks chaoscast to write one.

    benches/.venv/bin/python benches/quality_torch.py --csv thomas.csv --cell gru --hidden 128
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from torch import nn

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULT_TAG = "RESULT "


def load_csv(path):
    """(values [samples, vars], names) of a chaoscast CSV (first column t)."""
    with open(path) as f:
        header = f.readline().strip().split(",")
    values = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64)
    return values[:, 1:], header[1:]


def csv_from_recipe(recipe, binary):
    folder = tempfile.mkdtemp(prefix="quality-torch-")
    path = os.path.join(folder, "data.csv")
    subprocess.run([binary, "--quiet", "generate", recipe, "--format", "csv", "-o", path],
                   check=True, cwd=REPO)
    return path


def split_bounds(n):
    return round(n * 0.8), round(n * 0.9)


def starts(lo, hi, span, stride):
    return list(range(lo, hi - span + 1, stride)) if hi - lo >= span else []


class OneStep(nn.Module):
    """A recurrent layer and a head that predicts the change to the next value."""

    def __init__(self, cell, vars_, hidden):
        super().__init__()
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(vars_, hidden, batch_first=True)
        self.head = nn.Linear(hidden, vars_)

    def forward(self, x, state=None):
        h, state = self.rnn(x, state)
        return x + self.head(h), state

    @torch.no_grad()
    def forecast(self, window, steps):
        pred, state = self(window)
        current = pred[:, -1:]
        out = [current]
        for _ in range(steps - 1):
            current, state = self(current, state)
            out.append(current)
        return torch.cat(out, dim=1)


def scores(pred, truth, std, threshold=0.4):
    """Per-window NRMSE and VPT of de-normalised [n, H, D] arrays."""
    e = np.sqrt(((pred - truth) ** 2).mean(axis=2)) / std.mean()
    nrmse = e.mean(axis=1)
    nrmse[~np.isfinite(nrmse)] = np.inf
    over = ~(e <= threshold)  # NaN counts as over
    vpt = np.where(over.any(axis=1), over.argmax(axis=1), e.shape[1])
    return nrmse, vpt


def evaluate(model, z, window_starts, lookback, horizon, mean, std, batch=512):
    preds, truths = [], []
    for i in range(0, len(window_starts), batch):
        s = window_starts[i:i + batch]
        x = torch.tensor(np.stack([z[j:j + lookback] for j in s]), dtype=torch.float32)
        preds.append(model.forecast(x, horizon).numpy().astype(np.float64))
        truths.append(np.stack([z[j + lookback:j + lookback + horizon] for j in s]))
    pred = np.concatenate(preds) * std + mean
    truth = np.concatenate(truths) * std + mean
    return scores(pred, truth, std)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--csv", help="a chaoscast CSV dataset")
    p.add_argument("--recipe", help="a recipe TOML to generate the CSV from (needs --chaoscast)")
    p.add_argument("--chaoscast", default=os.path.join(REPO, "target/release/chaoscast"))
    p.add_argument("--cell", choices=("gru", "lstm"), default="gru")
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--lookback", type=int, default=150)
    p.add_argument("--horizon", type=int, default=41)
    p.add_argument("--eval-horizon", type=int, default=None,
                   help="also score closed-loop forecasts of this many steps (e.g. 164)")
    p.add_argument("--stride", type=int, default=5)
    p.add_argument("--val-stride", type=int, default=None,
                   help="stride of the validation windows (default: --stride, as chaoscast)")
    p.add_argument("--noise", type=float, default=0.01)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-best", action="store_true",
                   help="keep the last epoch's weights instead of the best validation epoch's")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    path = args.csv or csv_from_recipe(args.recipe, args.chaoscast)
    values, names = load_csv(path)
    n, d = values.shape
    train_end, val_end = split_bounds(n)
    mean = values[:train_end].mean(axis=0)
    std = values[:train_end].std(axis=0)  # population std, as chaoscast
    z = (values - mean) / std
    span = args.lookback + args.horizon
    train_starts = starts(0, train_end, span, args.stride)
    val_starts = starts(train_end, val_end, span, args.val_stride or args.stride)
    test_starts = starts(val_end, n, span, 1)
    seqs = torch.tensor(np.stack([z[s:s + span] for s in train_starts]), dtype=torch.float32)

    model = OneStep(args.cell, d, args.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(len(train_starts) / args.batch)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * steps_per_epoch)
    best = (math.inf, 0, None)
    history = []
    train_seconds = 0.0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        order = rng.permutation(len(train_starts))
        loss_sum = 0.0
        for i in range(0, len(order), args.batch):
            batch = seqs[order[i:i + args.batch]]
            x, y = batch[:, :-1], batch[:, 1:]
            if args.noise > 0:
                x = x + args.noise * torch.randn_like(x)
            pred, _ = model(x)
            loss = ((pred - y) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            if args.clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(batch)
        val_nrmse, _ = evaluate(model, z, val_starts, args.lookback, args.horizon, mean, std)
        val = float(np.median(val_nrmse))
        train_seconds += time.perf_counter() - t0
        history.append((epoch, loss_sum / len(order), val))
        if val < best[0] or args.no_best:
            best = (val, epoch, {k: v.clone() for k, v in model.state_dict().items()})
        if not args.quiet:
            print(f"epoch {epoch}: loss {loss_sum / len(order):.3e}, val NRMSE {val:.4f}, "
                  f"{train_seconds:.0f} s", file=sys.stderr, flush=True)
    model.load_state_dict(best[2])
    test_nrmse, test_vpt = evaluate(model, z, test_starts, args.lookback, args.horizon, mean, std)
    result = {
        "cell": args.cell, "hidden": args.hidden, "seed": args.seed, "epochs": args.epochs,
        "noise": args.noise, "weight_decay": args.weight_decay, "stride": args.stride,
        "val_windows": len(val_starts),
        "best_epoch": best[1], "val_nrmse": best[0],
        "test_nrmse_median": float(np.median(test_nrmse)),
        "test_nrmse_mean": float(np.mean(test_nrmse)),
        "test_vpt_median": float(np.median(test_vpt)),
        "train_seconds": train_seconds, "test_windows": len(test_starts),
        "torch": torch.__version__, "threads": args.threads,
    }
    persistence = np.repeat(values[[s + args.lookback - 1 for s in test_starts]][:, None], args.horizon, 1)
    truth = np.stack([values[s + args.lookback:s + span] for s in test_starts])
    result["persistence_nrmse_median"] = float(np.median(scores(persistence, truth, std)[0]))
    if args.eval_horizon:
        long_starts = starts(val_end, n, args.lookback + args.eval_horizon, 1)
        nrmse, vpt = evaluate(model, z, long_starts, args.lookback, args.eval_horizon, mean, std)
        result.update({"long_horizon": args.eval_horizon,
                       "long_nrmse_median": float(np.median(nrmse)),
                       "long_vpt_median": float(np.median(vpt))})
    print(RESULT_TAG + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

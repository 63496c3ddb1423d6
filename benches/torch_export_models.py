"""PyTorch twins of chaoscast's FDN, transformer and ESN forecasters, built from the weights that
`chaoscast export RUN --format safetensors` writes (the LSTM/GRU twins live with the driver).

    build(model_cfg, tensors) -> torch.nn.Module

`model_cfg` is the run's ModelConfig (`json.loads(meta["chaoscast.run"])["train"]["model"]`,
tagged by "family"); `tensors` maps the file's names (Burn module paths, enum variants skipped)
to float32 tensors in Burn's layout. The module returned has

    forward(x)          normalised window [batch, L, D] -> [batch, H, D]   (Rust `Model::forward`)
    rollout(x, steps)   closed loop [batch, steps, D]                      (Rust `Model::rollout`)

both float32, on z-scored values (de-normalise with x * std + mean). Gradients are off and the
module is in eval mode. `module.double()` with a float64 window gives the same function in f64
(useful to tell a semantic error from f32 rounding growing in a closed loop: the ESN's closed
loop amplifies rounding so much that after ~10 steps even exact f64 differs from chaoscast's f32
by more than 1e-5). Every name in `tensors` must be used (a ValueError names the others), so
a parameter the twin forgot cannot pass silently.

The semantics copied are the plain Burn operations (`Fdn::forward_reference`, Burn's
`TransformerEncoderLayer::forward`), which the Rust CPU path's fused kernels are tested against.

Layout notes: Burn's `Linear` weight is `[in, out]` (y = x W + b), so every nn.Linear gets the
transpose; Burn's `Conv1d` weight is `[out, in/groups, kernel]`, PyTorch's own layout.
"""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["build", "direct_rollout", "positional_encoding", "slide"]

F32 = torch.float32


# --- shared pieces ------------------------------------------------------------------------------


class _Tensors:
    """The file's tensors, handed out by name; remembers which were taken."""

    def __init__(self, tensors):
        self.tensors = {k: torch.as_tensor(v).to(F32) for k, v in tensors.items()}
        self.taken = set()

    def has(self, name):
        return name in self.tensors

    def take(self, name, shape=None):
        if name not in self.tensors:
            raise ValueError(
                f"the safetensors file has no tensor '{name}' (it has: "
                f"{', '.join(sorted(self.tensors))})"
            )
        t = self.tensors[name]
        if shape is not None and tuple(t.shape) != tuple(shape):
            raise ValueError(f"'{name}' has shape {tuple(t.shape)}, expected {tuple(shape)}")
        self.taken.add(name)
        return t

    def check_all_used(self, ignorable=()):
        left = sorted(set(self.tensors) - self.taken - set(ignorable))
        if left:
            raise ValueError(f"tensors the model does not use: {', '.join(left)}")


def _opt(cfg, key, default):
    """A config field: `Option` fields may be absent or null, both meaning the default."""
    v = cfg.get(key)
    return default if v is None else v


def _linear(t, prefix, d_in, d_out):
    """nn.Linear from Burn's `prefix.weight` [in, out] (transposed) and optional `prefix.bias`."""
    w = t.take(f"{prefix}.weight", (d_in, d_out))
    has_bias = t.has(f"{prefix}.bias")
    lin = nn.Linear(d_in, d_out, bias=has_bias, dtype=F32)
    with torch.no_grad():
        lin.weight.copy_(w.t())
        if has_bias:
            lin.bias.copy_(t.take(f"{prefix}.bias", (d_out,)))
    return lin


def _conv1d(t, prefix, c_in, c_out, kernel):
    """nn.Conv1d with "same" padding (odd kernel: (k-1)/2 zeros each side, as Burn's
    PaddingConfig1d::Same and the Rust fused path's explicit zero padding)."""
    w = t.take(f"{prefix}.weight", (c_out, c_in, kernel))
    has_bias = t.has(f"{prefix}.bias")
    conv = nn.Conv1d(c_in, c_out, kernel, padding=(kernel - 1) // 2, bias=has_bias, dtype=F32)
    with torch.no_grad():
        conv.weight.copy_(w)
        if has_bias:
            conv.bias.copy_(t.take(f"{prefix}.bias", (c_out,)))
    return conv


def _layer_norm(t, prefix, width, eps):
    """nn.LayerNorm from Burn's `gamma` / `beta` (biased variance, eps inside the sqrt: the same)."""
    has_beta = t.has(f"{prefix}.beta")
    norm = nn.LayerNorm(width, eps=eps, bias=has_beta, dtype=F32)
    with torch.no_grad():
        norm.weight.copy_(t.take(f"{prefix}.gamma", (width,)))
        if has_beta:
            norm.bias.copy_(t.take(f"{prefix}.beta", (width,)))
    return norm


def slide(x, steps, change):
    """`autoregressive::slide` with free feed: `change(window)` -> [batch, D] is added to the
    window's last value, the forecast appended and the oldest step dropped; [batch, steps, D]."""
    window = x
    length = x.shape[1]
    out = []
    for t in range(steps):
        forecast = window[:, length - 1, :] + change(window)
        out.append(forecast)
        if t + 1 < steps:
            nxt = forecast.unsqueeze(1)
            window = torch.cat([window[:, 1:, :], nxt], dim=1) if length > 1 else nxt
    return torch.stack(out, dim=1)


def direct_rollout(model, x, steps):
    """`Model::rollout` for a direct model: each H-step forecast appended to the window, whose
    last L steps are read again; the pieces cut to `steps`."""
    if steps < 1:
        raise ValueError("a rollout forecasts at least one step")
    lookback = x.shape[1]
    context = x
    pieces = []
    made = 0
    while made < steps:
        nxt = model.forward(context)
        made += nxt.shape[1]
        context = torch.cat([context, nxt], dim=1)
        context = context[:, context.shape[1] - lookback :, :]
        pieces.append(nxt)
    return torch.cat(pieces, dim=1)[:, :steps, :]


def _sliding_or_direct_rollout(model, x, steps):
    """`Model::rollout` for the FDN and the transformer: the sliding window of the
    autoregressive head (`model.one_step`), else the direct model's appended forecasts."""
    if not model.autoregressive:
        return direct_rollout(model, x, steps)
    if steps < 1:
        raise ValueError("a rollout forecasts at least one step")
    return slide(x, steps, model.one_step)


def _finish(module):
    module.eval()
    module.requires_grad_(False)
    return module


# --- FDN (src/models/fdn/) ---------------------------------------------------------------------


class _FdnBlock(nn.Module):
    def __init__(self, pointwise, temporal):
        super().__init__()
        self.pointwise = pointwise
        self.temporal = temporal

    def forward(self, h):
        # Burn's Gelu::new() is the exact (erf) GELU, not the tanh approximation.
        return F.gelu(self.temporal(self.pointwise(h)), approximate="none") + h


class _FdnBranch(nn.Module):
    def __init__(self, lift, blocks, head, start, length):
        super().__init__()
        self.lift = lift
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.start = start
        self.length = length

    def forward(self, series):
        # series: [n, c_in, L] -> [n, out]
        h = self.lift(series[:, :, self.start : self.start + self.length])
        for block in self.blocks:
            h = block(h)
        # Burn's flatten(1, 2) of [n, channels, len]: channel-major, as torch's.
        return self.head(h.flatten(1, 2))


class Fdn(nn.Module):
    """`Fdn::forward_reference` (three segment branches of lift, residual blocks of 1x1 conv ->
    kernel-k conv -> GELU (+ input), head; averaged), with the residual head, mixing and the
    autoregressive sliding-window decoder."""

    def __init__(self, cfg, t):
        super().__init__()
        self.vars = cfg["vars"]
        self.lookback = cfg["lookback"]
        self.horizon = cfg["horizon"]
        channels = _opt(cfg, "channels", 125)
        kernel = _opt(cfg, "kernel", 3)
        blocks = _opt(cfg, "blocks", 2)
        self.autoregressive = _opt(cfg, "decoder", "direct") == "autoregressive"
        # FdnConfig::init: residual only for the direct head (validate refuses it otherwise).
        self.residual = bool(_opt(cfg, "residual", False)) and not self.autoregressive
        self.mixing = bool(_opt(cfg, "mixing", False))
        if kernel % 2 == 0:
            raise ValueError("the FDN's kernel must be odd")
        self.out_steps = 1 if self.autoregressive else self.horizon
        half = self.lookback // 2
        bounds = [0, half, half + (self.lookback - half) // 2, self.lookback]
        c_in = self.vars if self.mixing else 1
        head_out = self.out_steps * (self.vars if self.mixing else 1)
        branches = []
        for s in range(3):
            p = f"branches.{s}"
            length = bounds[s + 1] - bounds[s]
            lift = _conv1d(t, f"{p}.lift", c_in, channels, 1)
            blks = [
                _FdnBlock(
                    _conv1d(t, f"{p}.blocks.{b}.pointwise", channels, channels, 1),
                    _conv1d(t, f"{p}.blocks.{b}.temporal", channels, channels, kernel),
                )
                for b in range(blocks + s)
            ]
            head = _linear(t, f"{p}.head", channels * length, head_out)
            branches.append(_FdnBranch(lift, blks, head, bounds[s], length))
        self.branches = nn.ModuleList(branches)

    def forward_steps(self, x):
        batch, lookback, vars_ = x.shape
        if lookback != self.lookback:
            raise ValueError(f"the FDN reads windows of {self.lookback} steps, got {lookback}")
        if self.mixing:
            series = x.transpose(1, 2)  # [batch, vars, L]
        else:
            # channel independence: every variable its own one-channel series
            series = x.transpose(1, 2).reshape(batch * vars_, 1, lookback)
        forecasts = [branch(series) for branch in self.branches]
        mean = ((forecasts[0] + forecasts[1]) + forecasts[2]) / 3.0
        if self.mixing:
            return mean.reshape(batch, self.out_steps, vars_)  # heads are step-major
        return mean.reshape(batch, vars_, self.out_steps).transpose(1, 2)

    def one_step(self, window):
        return self.forward_steps(window).reshape(window.shape[0], window.shape[2])

    def forward(self, x):
        if self.autoregressive:
            return slide(x, self.horizon, self.one_step)
        if self.residual:
            return self.forward_steps(x) + x[:, -1:, :]
        return self.forward_steps(x)

    def rollout(self, x, steps):
        return _sliding_or_direct_rollout(self, x, steps)


# --- transformer (src/models/transformer/) -----------------------------------------------------

# Burn's PositionalEncodingConfig defaults, which TransformerConfig::init keeps.
MAX_SEQUENCE_SIZE = 5000
MAX_TIMESCALE = 10000
# TransformerEncoderConfig's default layer_norm_eps (the forecaster keeps it).
LAYER_NORM_EPS = 1e-5


def positional_encoding(length, d_model, max_timescale=MAX_TIMESCALE):
    """Burn's `generate_sinusoids`, in f32 as Burn computes it: row i, columns 2j and 2j+1 are
    sin and cos of i * exp(2j * (-ln(max_timescale) / d_model)). [length, d_model]."""
    if d_model % 2:
        raise ValueError("d_model must be even for the positional encoding")
    inc = np.float32(-np.log(np.float32(max_timescale))) / np.float32(d_model)
    k = np.arange(0, d_model, 2, dtype=np.float32)
    div = np.exp(k * inc).astype(np.float32)  # [d_model / 2]
    pos = np.arange(length, dtype=np.float32)[:, None]
    angle = (div[None, :] * pos).astype(np.float32)
    out = np.empty((length, d_model), dtype=np.float32)
    out[:, 0::2] = np.sin(angle)
    out[:, 1::2] = np.cos(angle)
    return torch.from_numpy(out)


def _encoder_layer(t, prefix, d_model, heads, d_ff):
    """Burn's post-norm TransformerEncoderLayer (x = norm_1(x + mha(x)); x = norm_2(x + pwff(x)),
    GELU exact, dropout 0, plain softmax, no masks) is exactly torch's nn.TransformerEncoderLayer
    with norm_first=False, activation="gelu", batch_first=True: the heads split the width the
    same way ([b, s, heads, d_k]), scores are divided by sqrt(d_k), and Burn's norm_1 / norm_2 are
    torch's norm1 / norm2. (Burn's *pre-norm* layer would differ: it applies norm_2 before the
    attention and norm_1 before the feed-forward; the forecaster never builds it.)"""
    layer = nn.TransformerEncoderLayer(
        d_model,
        heads,
        dim_feedforward=d_ff,
        dropout=0.0,
        activation="gelu",
        layer_norm_eps=LAYER_NORM_EPS,
        batch_first=True,
        norm_first=False,
        bias=True,
        dtype=F32,
    )
    m = f"{prefix}.mha"
    ws, bs = [], []
    for name in ("query", "key", "value"):
        ws.append(t.take(f"{m}.{name}.weight", (d_model, d_model)).t())
        bs.append(t.take(f"{m}.{name}.bias", (d_model,)))
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(torch.cat(ws, dim=0))
        layer.self_attn.in_proj_bias.copy_(torch.cat(bs, dim=0))
        layer.self_attn.out_proj.weight.copy_(t.take(f"{m}.output.weight", (d_model, d_model)).t())
        layer.self_attn.out_proj.bias.copy_(t.take(f"{m}.output.bias", (d_model,)))
        inner = _linear(t, f"{prefix}.pwff.linear_inner", d_model, d_ff)
        outer = _linear(t, f"{prefix}.pwff.linear_outer", d_ff, d_model)
        layer.linear1.weight.copy_(inner.weight)
        layer.linear1.bias.copy_(inner.bias)
        layer.linear2.weight.copy_(outer.weight)
        layer.linear2.bias.copy_(outer.bias)
        for ours, theirs in (("norm_1", layer.norm1), ("norm_2", layer.norm2)):
            n = _layer_norm(t, f"{prefix}.{ours}", d_model, LAYER_NORM_EPS)
            theirs.weight.copy_(n.weight)
            theirs.bias.copy_(n.bias)
    return layer


class Transformer(nn.Module):
    """`TransformerForecaster`: patching (the oldest steps % p dropped), input projection,
    sinusoidal positions, post-norm encoder layers, last-token or mean pooling, a head to H·D
    values (step-major) or, autoregressive, to the one-step change with the window sliding."""

    def __init__(self, cfg, t):
        super().__init__()
        self.vars = cfg["vars"]
        self.horizon = cfg["horizon"]
        d_model = _opt(cfg, "d_model", 128)
        heads = _opt(cfg, "heads", 4)
        n_layers = _opt(cfg, "layers", 2)
        d_ff = _opt(cfg, "d_ff", 256)
        self.patch = _opt(cfg, "patch", 1)
        pooling = _opt(cfg, "pooling", "last")
        if pooling not in ("last", "mean"):
            raise ValueError(f"unknown pooling '{pooling}'")
        self.mean_pooling = pooling == "mean"
        self.autoregressive = _opt(cfg, "decoder", "direct") == "autoregressive"
        if d_model % heads:
            raise ValueError(f"{heads} heads do not divide d_model = {d_model}")
        # `dropout` needs nothing here: Burn's Dropout is the identity outside training.
        self.input = _linear(t, "input", self.patch * self.vars, d_model)
        self.register_buffer("sinusoids", positional_encoding(MAX_SEQUENCE_SIZE, d_model))
        self.layers = nn.ModuleList(
            _encoder_layer(t, f"encoder.layers.{i}", d_model, heads, d_ff) for i in range(n_layers)
        )
        self.head = _linear(
            t, "head", d_model, self.vars if self.autoregressive else self.horizon * self.vars
        )

    def encode(self, x):
        batch, steps, vars_ = x.shape
        p = self.patch
        if p > 1:
            kept = steps - steps % p
            x = x[:, steps - kept :, :].reshape(batch, kept // p, p * vars_)
        tokens = self.input(x)
        n = tokens.shape[1]
        if n > MAX_SEQUENCE_SIZE:
            raise ValueError(f"{n} tokens exceed the positional encoding's {MAX_SEQUENCE_SIZE}")
        h = tokens + self.sinusoids[:n].unsqueeze(0)
        for layer in self.layers:
            h = layer(h)
        return h.mean(dim=1) if self.mean_pooling else h[:, n - 1, :]

    def one_step(self, window):
        return self.head(self.encode(window))

    def forward(self, x):
        if self.autoregressive:
            return slide(x, self.horizon, self.one_step)
        return self.head(self.encode(x)).reshape(x.shape[0], self.horizon, self.vars)

    def rollout(self, x, steps):
        return _sliding_or_direct_rollout(self, x, steps)


# --- ESN (src/models/esn.rs) --------------------------------------------------------------------


class Esn(nn.Module):
    """`Esn::forecast`: from a zero state, s <- (1 - a) s + a tanh(u W_in^T + b + s W^T) over the
    window, then closed loop y = [s, u, 1] W_out^T, each forecast fed back as the next input.
    The file stores W_in^T [D, N], W^T [N, N], b [N] and W_out^T [N + D + 1, D]; the leak rate a
    is no tensor and comes from the config (`leak`, default 0.5)."""

    def __init__(self, cfg, t):
        super().__init__()
        self.vars = cfg["vars"]
        self.horizon = cfg["horizon"]
        n = _opt(cfg, "reservoir", 500)
        d = self.vars
        self.leak = float(_opt(cfg, "leak", 0.5))
        self.input = nn.Parameter(t.take("input", (d, n)).clone())
        self.recurrent = nn.Parameter(t.take("recurrent", (n, n)).clone())
        self.bias = nn.Parameter(t.take("bias", (n,)).clone())
        self.readout = nn.Parameter(t.take("readout", (n + d + 1, d)).clone())

    def _update(self, s, drive):
        fresh = torch.tanh(drive + s @ self.recurrent)
        if self.leak == 1.0:
            return fresh
        # Burn's mul_scalar(1.0 - a) with a f64: the scalar rounded to f32.
        return s * float(np.float32(1.0 - self.leak)) + fresh * float(np.float32(self.leak))

    def forecast(self, x, steps):
        if steps < 1:
            raise ValueError("a rollout forecasts at least one step")
        batch, length, vars_ = x.shape
        units = self.recurrent.shape[0]
        bias = self.bias.unsqueeze(0)
        drive = (x.reshape(batch * length, vars_) @ self.input + bias).reshape(batch, length, units)
        s = torch.zeros(batch, units, dtype=x.dtype)
        for i in range(length):
            s = self._update(s, drive[:, i, :])
        ones = torch.ones(batch, 1, dtype=x.dtype)
        u = x[:, length - 1, :]
        out = []
        for k in range(steps):
            y = torch.cat([s, u, ones], dim=1) @ self.readout
            out.append(y)
            if k + 1 < steps:
                s = self._update(s, y @ self.input + bias)
            u = y
        return torch.stack(out, dim=1)

    def forward(self, x):
        return self.forecast(x, self.horizon)

    def rollout(self, x, steps):
        return self.forecast(x, steps)


# --- entry point --------------------------------------------------------------------------------


def build(model_cfg, tensors):
    """The PyTorch twin of the run's model: `model_cfg` the ModelConfig dict (tagged by
    "family"), `tensors` the safetensors file's {name: tensor}. Families fdn, transformer, esn;
    any other is a ValueError (the recurrent family is built elsewhere)."""
    family = model_cfg.get("family")
    t = _Tensors(tensors)
    if family == "fdn":
        module = Fdn(model_cfg, t)
    elif family == "transformer":
        module = Transformer(model_cfg, t)
        # Should the exporter ever store the constant sinusoids, they must equal ours.
        name = "position.sinusoids"
        if t.has(name):
            got = t.take(name).reshape(-1, module.sinusoids.shape[1])
            if not torch.allclose(got, module.sinusoids[: got.shape[0]], atol=1e-6):
                raise ValueError("the file's positional sinusoids differ from Burn's formula")
    elif family == "esn":
        module = Esn(model_cfg, t)
    else:
        raise ValueError(
            f"model family '{family}' is not built here (fdn, transformer and esn are)"
        )
    t.check_all_used()
    return _finish(module)

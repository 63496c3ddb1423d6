//! Trained weights out of chaoscast: a run's model as a [safetensors] file that PyTorch, NumPy or
//! any other safetensors reader opens without chaoscast (`chaoscast export RUN --format
//! safetensors`; a PyTorch loader that reproduces `chaoscast predict` is
//! `benches/export_torch.py`).
//!
//! The file holds the model's inference view — under weight splitting, the grouped weights the
//! trained function computes with, not the stored ungrouped ones — as `f32` tensors in
//! chaoscast's own layout, named by their module paths (Burn's, without enum variant names:
//! `layers.0.input`, `attention.query.weight`, `head.bias`). Its metadata says how to use them:
//!
//! - `chaoscast.format`: [`EXPORT_FORMAT`];
//! - `chaoscast.run`: the run's `config.json` (model config, lookback, variable names, the
//!   normalisation statistics the model expects its inputs in, the dataset's recipe);
//! - `chaoscast.forward`: the forward pass in one paragraph;
//! - `chaoscast.layout`: per tensor, its shape and what it is, in the terms of the matching
//!   PyTorch parameter where there is one (chaoscast's matrices multiply from the right,
//!   `y = x·W`, so they are the transposes of PyTorch's `weight`s; the LSTM's one bias is
//!   PyTorch's `bias_ih + bias_hh`).
//!
//! [safetensors]: https://huggingface.co/docs/safetensors

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use burn_store::{ModuleSnapshot, SafetensorsStore};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::models::{CellKind, Model, ModelConfig};
use crate::run::RunConfig;

/// The version of the export's metadata layout, stored as `chaoscast.format`.
pub const EXPORT_FORMAT: &str = "chaoscast-safetensors-1";

/// One tensor of an export: its name, shape and what it is.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorLayout {
    /// The tensor's name in the file.
    #[serde(skip)]
    pub name: String,
    /// Its shape.
    pub shape: Vec<usize>,
    /// What it is and how it enters the forward pass.
    pub role: String,
}

/// A model's weights as the bytes of a safetensors file, with the metadata described in the
/// module documentation, and the layout of every tensor in file order.
pub fn safetensors_bytes<B: Backend>(
    model: &Model<B>,
    config: &RunConfig,
) -> Result<(Vec<u8>, Vec<TensorLayout>)> {
    let family = &config.train.model;
    let layout = layout(model, family)?;
    let layout_json: BTreeMap<&str, &TensorLayout> =
        layout.iter().map(|t| (t.name.as_str(), t)).collect();
    let run_json =
        serde_json::to_string(config).map_err(|e| Error::config("export", e.to_string()))?;
    let layout_json =
        serde_json::to_string(&layout_json).map_err(|e| Error::config("export", e.to_string()))?;
    let mut store = SafetensorsStore::from_bytes(None)
        .skip_enum_variants(true)
        .metadata("chaoscast.format", EXPORT_FORMAT)
        .metadata("chaoscast.version", env!("CARGO_PKG_VERSION"))
        .metadata("chaoscast.run", run_json)
        .metadata("chaoscast.forward", forward_text(family))
        .metadata("chaoscast.layout", layout_json);
    model
        .save_into(&mut store)
        .map_err(|e| Error::config("export", format!("safetensors: {e}")))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| Error::config("export", format!("safetensors: {e}")))?;
    Ok((bytes, layout))
}

/// The name, shape and role of every tensor of `model` (built from `config`), in file order; an
/// error names a tensor this version cannot describe.
pub fn layout<B: Backend>(model: &Model<B>, config: &ModelConfig) -> Result<Vec<TensorLayout>> {
    model
        .collect(None, None, true)
        .into_iter()
        .map(|snapshot| {
            let name = snapshot.full_path();
            let shape = snapshot.shape.to_vec();
            let role = role(config, &name, &shape).ok_or_else(|| {
                Error::config(
                    "export",
                    format!(
                        "tensor '{name}' of the {} model has no documented layout",
                        config.name()
                    ),
                )
            })?;
            Ok(TensorLayout { name, shape, role })
        })
        .collect()
}

/// Writes the safetensors export of the run folder `run` to `out` (atomically: a temporary
/// file, then a rename), refusing an existing `out` unless `force`; returns the layout written.
pub fn export_run(run: &Path, out: &Path, force: bool) -> Result<Vec<TensorLayout>> {
    if out.exists() && !force {
        return Err(Error::storage(
            out,
            "it already exists; pass --force to overwrite it",
        ));
    }
    let config = RunConfig::load(run)?;
    let model = crate::run::load_model::<burn::backend::Flex>(&config, run, &Default::default())?;
    let (bytes, layout) = safetensors_bytes(&model, &config)?;
    crate::run::write_atomic(out, &bytes)?;
    Ok(layout)
}

/// The forward pass of `model` in words, stored as `chaoscast.forward`.
fn forward_text(model: &ModelConfig) -> String {
    let common = "Inputs are z-scored per variable with chaoscast.run's normalizer \
                  ((x - mean) / std, population std of the training split) and forecasts \
                  de-normalised the same way; a window is [batch, lookback, vars].";
    let body = match model {
        ModelConfig::Recurrent(c) if c.is_autoregressive() => {
            "Stacked recurrent layers (zero initial state) read the window; then, from the \
             window's last value u_L, the forecast is y_1 = u_L + head(h_L) and each further step \
             feeds the previous forecast back: h = layers(y_t, state), y_{t+1} = y_t + head(h) \
             (head on the top layer's hidden state, [hidden, vars])."
        }
        ModelConfig::Recurrent(_) => {
            "Stacked recurrent layers (zero initial state) give hidden states h_1..h_L of the top \
             layer; attention: q = h_L·Wq + bq, k_t = h_t·Wk + bk, v_t = h_t·Wv + bv, context = \
             softmax(q·k^T / sqrt(hidden))·v; forecast = [context, h_L]·W_head + b_head reshaped \
             to [horizon, vars] (step-major). Longer rollouts append each forecast to the window \
             and read its last lookback steps again."
        }
        ModelConfig::Fdn(_) => {
            "FDN (see chaoscast's src/models/fdn/): the window is cut into its oldest half and \
             two quarters; branch b reads segment b per variable (or all variables with mixing): \
             lift (1x1 Conv1d), blocks of h + GELU(temporal(pointwise(h))) with 'same' padding, \
             then head on the flattened [channels·steps] features; the branches' forecasts are \
             averaged (plus the window's last value with residual)."
        }
        ModelConfig::Transformer(_) => {
            "Transformer encoder (see chaoscast's src/models/transformer/): patches of `patch` \
             steps (the oldest lookback % patch steps dropped) projected by input, plus Burn's \
             sinusoidal positional encoding, through Burn's TransformerEncoder layers (mha, \
             pwff, norm_1, norm_2), pooled (last token or mean), then head to [horizon, vars]."
        }
        ModelConfig::Esn(_) => {
            "Echo state network: from r = 0, each window step x_t drives r <- (1 - leak)·r + \
             leak·tanh(x_t·input + bias + r·recurrent) (leak in the model config); then with u the \
             window's last value, y = [r, u, 1]·readout is the next step, and each further step \
             feeds it back: r <- the same update driven by y, u <- y."
        }
    };
    format!("{body} {common}")
}

/// What the tensor `name` of shape `shape` is in `model`; `None` for a name this version does
/// not document (a test checks every model has none).
fn role(model: &ModelConfig, name: &str, shape: &[usize]) -> Option<String> {
    let parts: Vec<&str> = name.split('.').collect();
    let linear = |what: &str, leaf: &str| match leaf {
        "weight" => Some(format!(
            "{what}: weight W [in, out] of y = x·W + b (PyTorch's nn.Linear.weight is W^T)"
        )),
        "bias" => Some(format!("{what}: bias b [out] of y = x·W + b")),
        _ => None,
    };
    match (model, parts.as_slice()) {
        (ModelConfig::Recurrent(c), ["layers", l, leaf]) => {
            let (gates, order, pytorch) = match c.cell {
                CellKind::Lstm => (4, "i, f, g, o", "nn.LSTM"),
                CellKind::Gru => (3, "r, z, n", "nn.GRU"),
            };
            let text = match *leaf {
                "input" => format!(
                    "layer {l} input weights [inputs, {gates}·hidden], gate pre-activations \
                     x_t·W; column blocks {order} ({pytorch}'s weight_ih_l{l} is W^T, same \
                     gate order)"
                ),
                "recurrent" => format!(
                    "layer {l} recurrent weights [hidden, {gates}·hidden], h_(t-1)·W; column \
                     blocks {order} ({pytorch}'s weight_hh_l{l} is W^T)"
                ),
                "bias" if c.cell == CellKind::Lstm => format!(
                    "layer {l} gate bias [4·hidden], blocks i, f, g, o: one bias where \
                     nn.LSTM has two (bias_ih_l{l} + bias_hh_l{l})"
                ),
                "input_bias" => format!(
                    "layer {l} input-side bias [3·hidden], blocks r, z, n (nn.GRU's \
                     bias_ih_l{l})"
                ),
                "recurrent_bias" => format!(
                    "layer {l} recurrent-side bias [3·hidden], blocks r, z, n; its n block sits \
                     inside the reset gate's product (nn.GRU's bias_hh_l{l})"
                ),
                _ => return None,
            };
            Some(text)
        }
        (ModelConfig::Recurrent(c), ["head", leaf]) if c.is_autoregressive() => linear(
            "one-step head on the top hidden state, the change to the next value",
            leaf,
        ),
        (ModelConfig::Recurrent(_), ["head", leaf]) => linear(
            "direct head on [context, h_L], out = horizon·vars step-major",
            leaf,
        ),
        (ModelConfig::Recurrent(_), ["attention", which @ ("query" | "key" | "value"), leaf]) => {
            linear(&format!("attention {which} projection"), leaf)
        }
        (ModelConfig::Fdn(_), ["branches", b, "lift", leaf]) => {
            conv(&format!("branch {b} lift (1x1)"), leaf)
        }
        (
            ModelConfig::Fdn(_),
            [
                "branches",
                b,
                "blocks",
                k,
                which @ ("pointwise" | "temporal"),
                leaf,
            ],
        ) => conv(&format!("branch {b} block {k} {which} convolution"), leaf),
        (ModelConfig::Fdn(_), ["branches", b, "head", leaf]) => linear(
            &format!("branch {b} head on the flattened [channels·steps] features (channel-major)"),
            leaf,
        ),
        (ModelConfig::Transformer(_), ["input", leaf]) => linear(
            "token projection of patch·vars values (step-major) to d_model",
            leaf,
        ),
        (ModelConfig::Transformer(_), ["head", leaf]) => {
            linear("head on the pooled encoding", leaf)
        }
        (ModelConfig::Transformer(_), ["encoder", "layers", l, "mha", which, leaf])
            if matches!(*which, "query" | "key" | "value" | "output") =>
        {
            linear(
                &format!(
                    "encoder layer {l} attention {which} projection (all heads, head-major columns)"
                ),
                leaf,
            )
        }
        (ModelConfig::Transformer(_), ["encoder", "layers", l, "pwff", which, leaf])
            if matches!(*which, "linear_inner" | "linear_outer") =>
        {
            linear(&format!("encoder layer {l} feed-forward {which}"), leaf)
        }
        (
            ModelConfig::Transformer(_),
            ["encoder", "layers", l, norm @ ("norm_1" | "norm_2"), leaf],
        ) => match *leaf {
            "gamma" => Some(format!(
                "encoder layer {l} {norm} LayerNorm scale (nn.LayerNorm.weight)"
            )),
            "beta" => Some(format!(
                "encoder layer {l} {norm} LayerNorm shift (nn.LayerNorm.bias)"
            )),
            _ => None,
        },
        (ModelConfig::Esn(_), [leaf]) => match *leaf {
            "input" => Some("reservoir input weights [vars, units], x_t·W".into()),
            "recurrent" => Some("reservoir recurrent weights [units, units], r·W".into()),
            "bias" => Some("reservoir bias [units]".into()),
            "readout" => Some(format!(
                "ridge readout [units + vars + 1 = {}, vars]: the next step y = [r, u, 1]·W \
                 (reservoir state, current value, a constant one)",
                shape.first().copied().unwrap_or(0)
            )),
            _ => None,
        },
        _ => None,
    }
}

/// The role of a Conv1d parameter.
fn conv(what: &str, leaf: &str) -> Option<String> {
    match leaf {
        "weight" => Some(format!(
            "{what}: weight [out, in, kernel], as nn.Conv1d.weight (cross-correlation)"
        )),
        "bias" => Some(format!("{what}: bias [out]")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{
        Decoder, EsnConfig, FdnConfig, Pooling, RecurrentConfig, TransformerConfig,
    };
    use burn::backend::Flex;

    fn configs() -> Vec<ModelConfig> {
        let rnn = |cell| {
            RecurrentConfig::new(cell, 3, 5)
                .with_hidden(8)
                .with_layers(2)
        };
        vec![
            ModelConfig::Recurrent(rnn(CellKind::Lstm)),
            ModelConfig::Recurrent(rnn(CellKind::Gru)),
            ModelConfig::Recurrent(rnn(CellKind::Lstm).with_decoder(Some(Decoder::Autoregressive))),
            ModelConfig::Recurrent(rnn(CellKind::Gru).with_decoder(Some(Decoder::Autoregressive))),
            ModelConfig::Fdn(FdnConfig::new(3, 20, 5).with_channels(4)),
            ModelConfig::Fdn(
                FdnConfig::new(3, 20, 5)
                    .with_channels(4)
                    .with_mixing(Some(true))
                    .with_decoder(Some(Decoder::Autoregressive)),
            ),
            ModelConfig::Transformer(
                TransformerConfig::new(3, 5)
                    .with_d_model(8)
                    .with_d_ff(16)
                    .with_layers(3)
                    .with_pooling(Pooling::Mean),
            ),
            ModelConfig::Esn(EsnConfig::new(3, 5).with_reservoir(10).with_sparsity(0.5)),
        ]
    }

    /// Every tensor of every model family has a documented role and its own name, and the
    /// layout's shapes are the parameters' shapes.
    #[test]
    fn every_tensor_of_every_model_is_documented() {
        let device = Default::default();
        for cfg in configs() {
            let model = cfg.init::<Flex>(&device).unwrap();
            let layout = layout(&model, &cfg).unwrap();
            let mut names: Vec<&str> = layout.iter().map(|t| t.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), layout.len(), "{}: duplicate names", cfg.name());
            let mut shapes: Vec<Vec<usize>> = layout.iter().map(|t| t.shape.clone()).collect();
            let mut expected = model.param_shapes();
            shapes.sort();
            expected.sort();
            assert_eq!(shapes, expected, "{}", cfg.name());
        }
        // A name from another family is refused rather than described wrongly.
        let fdn = &configs()[4];
        assert_eq!(role(fdn, "layers.0.input", &[3, 32]), None);
    }

    /// The file's tensors, read back by Burn's own store into a model of other weights, give
    /// back the exported model's forecasts.
    #[test]
    fn tensors_read_back_into_a_fresh_model_forecast_the_same() {
        let device = Default::default();
        for cfg in configs() {
            let model = cfg.init::<Flex>(&device).unwrap();
            let mut store = SafetensorsStore::from_bytes(None).skip_enum_variants(true);
            model.save_into(&mut store).unwrap();
            let bytes = store.get_bytes().unwrap();
            let other = match &cfg {
                ModelConfig::Recurrent(c) => ModelConfig::Recurrent(c.clone().with_seed(9)),
                ModelConfig::Fdn(c) => ModelConfig::Fdn(c.clone().with_seed(9)),
                ModelConfig::Transformer(c) => ModelConfig::Transformer(c.clone().with_seed(9)),
                ModelConfig::Esn(c) => ModelConfig::Esn(c.clone().with_seed(9)),
            };
            let mut fresh = other.init::<Flex>(&device).unwrap();
            let x = Tensor::<Flex, 3>::from_data(
                TensorData::new(
                    (0..60).map(|i| (i as f32 * 0.3).sin()).collect::<Vec<_>>(),
                    [1, 20, 3],
                ),
                &device,
            );
            let want = model.forward(x.clone()).into_data();
            assert_ne!(values(&fresh), values(&model), "{}", cfg.name());
            let mut back = SafetensorsStore::from_bytes(Some(bytes)).skip_enum_variants(true);
            let result = fresh.load_from(&mut back).unwrap();
            assert!(
                result.errors.is_empty(),
                "{}: {:?}",
                cfg.name(),
                result.errors
            );
            assert!(
                result.missing.is_empty(),
                "{}: {:?}",
                cfg.name(),
                result.missing
            );
            assert_eq!(values(&fresh), values(&model), "{}", cfg.name());
            assert_eq!(fresh.forward(x).into_data(), want, "{}", cfg.name());
        }
    }

    /// Every tensor's values, in file order.
    fn values(model: &Model<Flex>) -> Vec<Vec<f32>> {
        model
            .collect(None, None, true)
            .iter()
            .map(|s| s.to_data().unwrap().to_vec::<f32>().unwrap())
            .collect()
    }
}

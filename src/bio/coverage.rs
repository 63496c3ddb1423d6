//! Which parameters the mechanisms reach, found by walking the module tree: a parameter's role
//! follows from its field name and the layer type that holds it (see the table in [`crate::bio`]).

use std::collections::{HashMap, HashSet};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::prelude::*;

use super::Scope;
use crate::models::Model;

/// The parameters each mechanism acts on.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    /// Weight tensors for fuzzy learning rates and rejuvenation.
    pub weights: HashSet<ParamId>,
    /// Parameters weight splitting transforms, with the axis that holds the layer's outputs.
    pub split: HashMap<ParamId, usize>,
    /// The fused gates of a recurrent cell's split parameters (4 for the LSTM's i, f, g, o; 3
    /// for the GRU's r, z, n), whose outputs lie gate after gate along the split axis: groups
    /// must tile each gate's hidden units, never straddle two gates.
    pub gates: HashMap<ParamId, usize>,
    /// Every covered parameter's path, for messages.
    pub paths: HashMap<ParamId, String>,
}

impl Coverage {
    /// The coverage of `model` under `scope`.
    pub fn of<B: Backend>(model: &Model<B>, scope: Scope) -> Self {
        let mut walk = Walk {
            scope,
            path: Vec::new(),
            out: Coverage::default(),
        };
        model.visit(&mut walk);
        walk.out
    }
}

struct Walk {
    scope: Scope,
    /// (field name, type of the container that holds the field).
    path: Vec<(String, String)>,
    out: Coverage,
}

impl<B: Backend> ModuleVisitor<B> for Walk {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        self.path
            .push((name.to_string(), container_type.to_string()));
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let Some((field, holder)) = self.path.last() else {
            return;
        };
        let holder = holder.strip_prefix("Struct:").unwrap_or(holder);
        let recurrent = matches!(holder, "LstmCell" | "GruCell");
        if recurrent && self.scope == Scope::Reference {
            return;
        }
        let (weight, bias) = match (holder, field.as_str()) {
            ("Linear" | "Conv1d", "weight") => (true, false),
            ("Linear" | "Conv1d", "bias") => (false, true),
            ("LstmCell" | "GruCell", "input" | "recurrent") => (true, false),
            ("LstmCell", "bias") | ("GruCell", "input_bias" | "recurrent_bias") => (false, true),
            _ => (false, false),
        };
        if !weight && !bias {
            return;
        }
        let id = param.id;
        self.out.paths.insert(
            id,
            self.path
                .iter()
                .map(|(f, _)| f.as_str())
                .collect::<Vec<_>>()
                .join("."),
        );
        if weight {
            self.out.weights.insert(id);
        }
        let head = self.path.iter().any(|(f, _)| f == "head");
        if !head {
            // Outputs: the last axis of Linear and cell weights ([in, out]), the first of Conv1d
            // kernels ([out, in, k]), the only axis of biases.
            let axis = match (holder, D) {
                ("Conv1d", _) | (_, 1) => 0,
                _ => D - 1,
            };
            self.out.split.insert(id, axis);
            match holder {
                "LstmCell" => {
                    self.out.gates.insert(id, 4);
                }
                "GruCell" => {
                    self.out.gates.insert(id, 3);
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{CellKind, FdnConfig, ModelConfig, RecurrentConfig, TransformerConfig};
    use burn::backend::Flex;

    fn paths(c: &Coverage, ids: impl Iterator<Item = ParamId>) -> Vec<String> {
        let mut v: Vec<String> = ids.map(|id| c.paths[&id].clone()).collect();
        v.sort();
        v
    }

    #[test]
    fn recurrent_coverage_by_scope() {
        let m = ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Lstm, 3, 5).with_hidden(8))
            .init::<Flex>(&Default::default())
            .unwrap();
        let all = Coverage::of(&m, Scope::All);
        let w = paths(&all, all.weights.iter().copied());
        assert_eq!(
            w,
            [
                "Recurrent.attention.key.weight",
                "Recurrent.attention.query.weight",
                "Recurrent.attention.value.weight",
                "Recurrent.head.weight",
                "Recurrent.layers.0.Lstm.input",
                "Recurrent.layers.0.Lstm.recurrent",
            ]
        );
        let s = paths(&all, all.split.keys().copied());
        assert!(s.contains(&"Recurrent.layers.0.Lstm.bias".to_string()));
        assert!(s.iter().all(|p| !p.contains("head")), "{s:?}");
        let reference = Coverage::of(&m, Scope::Reference);
        let w = paths(&reference, reference.weights.iter().copied());
        assert!(w.iter().all(|p| !p.contains("Lstm")), "{w:?}");
        assert_eq!(w.len(), 4);
    }

    #[test]
    fn fdn_and_transformer_coverage() {
        let device = Default::default();
        let fdn = ModelConfig::Fdn(FdnConfig::new(3, 20, 5).with_channels(4))
            .init::<Flex>(&device)
            .unwrap();
        let c = Coverage::of(&fdn, Scope::Reference);
        // Every conv kernel and every head is a weight; heads are never split.
        assert!(c.weights.len() > 10);
        assert!(
            paths(&c, c.split.keys().copied())
                .iter()
                .all(|p| !p.contains("head"))
        );
        let tr = ModelConfig::Transformer(
            TransformerConfig::new(3, 5)
                .with_d_model(8)
                .with_d_ff(16)
                .with_layers(1),
        )
        .init::<Flex>(&device)
        .unwrap();
        let c = Coverage::of(&tr, Scope::All);
        let w = paths(&c, c.weights.iter().copied());
        // Input projection, 4 attention projections, 2 feed-forward layers, the head.
        assert_eq!(w.len(), 8, "{w:?}");
        assert!(w.iter().all(|p| !p.contains("norm")), "{w:?}");
    }
}

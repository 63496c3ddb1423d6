//! Weight splitting: a covered layer's N outputs (bias included) are summed in groups of Γ
//! adjacent outputs and each sum repeated Γ times, (a, b, c, d) → (a+b, a+b, c+d, c+d): N/Γ
//! effective neurons, each reached through Γ synapses, with the output width and the parameter
//! count unchanged.
//!
//! Because the grouping is linear it is applied to the parameters: W' = W·S and b' = b·S with S
//! the block matrix of Γ×Γ ones, which gives the same outputs and gradients as summing outputs.
//! [`split_model`] builds that view of a model for one forward pass; the stored weights stay W.
//! In LSTM and GRU cells it groups each gate's pre-activation: the gates' outputs lie gate after
//! gate in the fused weights, and Γ must divide the hidden size itself (not only the fused
//! width), so that no group straddles two gates ([`check`] refuses it).
//!
//! One exception in the GRU: its candidate n = tanh(W_in·x + b_in + r ⊙ (W_hn·h + b_hn)) has the
//! reset gate r between its recurrent projection and its pre-activation. Grouping W_hn's columns
//! groups the projection W_hn·h + b_hn; the pre-activation's recurrent part r ⊙ (…) is grouped
//! only where r is equal across a group, which it generally is not. The candidate's input part
//! and the r and z gates are grouped exactly. (The authors' package cannot reach PyTorch's
//! `nn.GRU` weights at all, so it has no counterpart to follow.)

use burn::module::{Module, ModuleMapper, Param};
use burn::prelude::*;

use super::coverage::Coverage;
use crate::error::{Error, Result};
use crate::models::Model;

/// Checks that Γ divides the output width of every layer weight splitting covers.
pub fn check<B: Backend>(model: &Model<B>, coverage: &Coverage, groups: usize) -> Result<()> {
    let mut walk = Check {
        coverage,
        groups,
        bad: None,
    };
    model.visit(&mut walk);
    match walk.bad {
        Some((path, what)) => Err(Error::config(
            "ws groups",
            format!("Γ = {groups} must divide every split layer's width, but {path} has {what}"),
        )),
        None => Ok(()),
    }
}

struct Check<'a> {
    coverage: &'a Coverage,
    groups: usize,
    bad: Option<(String, String)>,
}

impl<B: Backend> burn::module::ModuleVisitor<B> for Check<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(&axis) = self.coverage.split.get(&param.id) {
            // A recurrent cell's fused gates each hold n / gates outputs, which Γ must divide.
            let gates = self.coverage.gates.get(&param.id).copied().unwrap_or(1);
            let n = param.val().dims()[axis] / gates;
            if !n.is_multiple_of(self.groups) && self.bad.is_none() {
                let what = if gates > 1 {
                    format!("{n} hidden units per gate")
                } else {
                    format!("{n} outputs")
                };
                self.bad = Some((self.coverage.paths[&param.id].clone(), what));
            }
        }
    }
}

/// `model` with every split parameter replaced by its grouped view (differentiable: gradients
/// flow to the stored weights).
pub fn split_model<B: Backend>(model: Model<B>, coverage: &Coverage, groups: usize) -> Model<B> {
    model.map(&mut Split { coverage, groups })
}

/// Sums groups of `groups` adjacent entries along `axis` and repeats each sum `groups` times.
pub fn group_sum<B: Backend, const D: usize>(
    w: Tensor<B, D>,
    axis: usize,
    groups: usize,
) -> Tensor<B, D> {
    let last = D - 1;
    let moved = if axis == last {
        w
    } else {
        w.swap_dims(axis, last)
    };
    let dims = moved.dims();
    let n = dims[last];
    let rest = dims[..last].iter().product::<usize>();
    let grouped = moved
        .reshape([rest, n / groups, groups])
        .sum_dim(2)
        .repeat_dim(2, groups)
        .reshape(dims);
    if axis == last {
        grouped
    } else {
        grouped.swap_dims(axis, last)
    }
}

struct Split<'a> {
    coverage: &'a Coverage,
    groups: usize,
}

impl<B: Backend> ModuleMapper<B> for Split<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, w, mapper) = param.consume();
        match self.coverage.split.get(&id) {
            Some(&axis) => Param::from_mapped_value(id, group_sum(w, axis, self.groups), mapper),
            None => Param::from_mapped_value(id, w, mapper),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bio::Scope;
    use crate::models::{CellKind, FdnConfig, ModelConfig, RecurrentConfig};
    use burn::backend::Flex;

    #[test]
    fn grouped_sums_along_either_axis() {
        let device = Default::default();
        // A Linear weight [in = 2, out = 4] and x = (1, 10): y = x·W' with W' grouped along out.
        let w = Tensor::<Flex, 2>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], [2, 4]),
            &device,
        );
        let ws = group_sum(w.clone(), 1, 2);
        let x = Tensor::<Flex, 2>::from_data(TensorData::new(vec![1.0f32, 10.0], [1, 2]), &device);
        let y: Vec<f32> = x.clone().matmul(w).into_data().to_vec().unwrap();
        let ys: Vec<f32> = x.matmul(ws).into_data().to_vec().unwrap();
        // Outputs (51, 62, 73, 84) → (113, 113, 157, 157).
        assert_eq!(y, [51.0, 62.0, 73.0, 84.0]);
        assert_eq!(ys, [113.0, 113.0, 157.0, 157.0]);
        // A conv kernel [out = 4, in = 1, k = 1] groups along axis 0.
        let k = Tensor::<Flex, 3>::from_data(
            TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [4, 1, 1]),
            &device,
        );
        let ks: Vec<f32> = group_sum(k, 0, 2).into_data().to_vec().unwrap();
        assert_eq!(ks, [3.0, 3.0, 7.0, 7.0]);
    }

    #[test]
    fn split_keeps_shapes_and_parameter_count_and_never_the_head() {
        let device = Default::default();
        let m = ModelConfig::Recurrent(RecurrentConfig::new(CellKind::Gru, 3, 5).with_hidden(8))
            .init::<Flex>(&device)
            .unwrap();
        let cov = Coverage::of(&m, Scope::All);
        let head_before = match &m {
            Model::Recurrent(r) => r.head.weight.val().into_data(),
            _ => unreachable!(),
        };
        let split = split_model(m.clone(), &cov, 2);
        assert_eq!(split.num_params(), m.num_params());
        assert_eq!(split.param_shapes(), m.param_shapes());
        let x = Tensor::<Flex, 3>::ones([2, 6, 3], &device);
        assert_eq!(split.forward(x.clone()).dims(), [2, 5, 3]);
        match &split {
            Model::Recurrent(r) => assert_eq!(r.head.weight.val().into_data(), head_before),
            _ => unreachable!(),
        }
        assert_ne!(
            split.forward(x.clone()).into_data(),
            m.forward(x).into_data(),
            "splitting changes the function"
        );
        // Γ = 3 does not divide the hidden size 8: a config error naming the layer.
        let err = check(&m, &cov, 3).unwrap_err().to_string();
        assert!(err.contains("Γ = 3") && err.contains("8 "), "{err}");
        check(&m, &cov, 2).unwrap();
        let fdn = ModelConfig::Fdn(FdnConfig::new(3, 20, 5).with_channels(6))
            .init::<Flex>(&device)
            .unwrap();
        let cov = Coverage::of(&fdn, Scope::All);
        assert!(check(&fdn, &cov, 4).is_err());
        check(&fdn, &cov, 3).unwrap();
    }

    /// Γ is checked against each fused gate's hidden units, not the fused width: the
    /// autoregressive LSTM with h = 6 has 4h = 24 gate outputs, which Γ = 4 divides, but groups of
    /// 4 would straddle the input and forget gates.
    #[test]
    fn groups_never_straddle_two_gates() {
        let device = Default::default();
        for (kind, gates) in [(CellKind::Lstm, 4), (CellKind::Gru, 3)] {
            let m = ModelConfig::Recurrent(
                RecurrentConfig::new(kind, 3, 5)
                    .with_hidden(6)
                    .with_decoder(Some(crate::models::Decoder::Autoregressive)),
            )
            .init::<Flex>(&device)
            .unwrap();
            let cov = Coverage::of(&m, Scope::All);
            assert!(cov.gates.values().all(|&g| g == gates), "{kind:?}");
            assert!(!cov.gates.is_empty());
            let err = check(&m, &cov, 4).unwrap_err().to_string();
            assert!(err.contains("6 hidden units per gate"), "{kind:?}: {err}");
            check(&m, &cov, 3).unwrap();
            check(&m, &cov, 2).unwrap();
        }
    }
}

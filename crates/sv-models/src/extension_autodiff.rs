//! What the autodiff halves of the backend extensions share: recording an operation whose
//! backward pass keeps some of its inputs as checkpoints, handing its gradients to the
//! parents that need them, and the whole backward step of the operations of three inputs
//! that keep the first two (GRN, LayerNorm, the linear layer).

use burn::backend::Backend;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::{Autodiff, NodeId};
use burn::backend::tensor::FloatTensor;

/// Run `forward` on the inputs' primitives and record `op` on the graph. When a parent
/// needs gradients, `keep` builds the backward step's state, checkpointing input `i`
/// through the function it is given.
pub(crate) fn record<B, C, Op, const N: usize>(
    op: Op,
    inputs: [FloatTensor<Autodiff<B, C>>; N],
    keep: impl FnOnce(&mut dyn FnMut(usize) -> NodeId) -> Op::State,
    forward: impl FnOnce([FloatTensor<B>; N]) -> FloatTensor<B>,
) -> FloatTensor<Autodiff<B, C>>
where
    B: Backend,
    C: CheckpointStrategy,
    Op: Backward<B, N>,
{
    let nodes = inputs.each_ref().map(|t| t.node());
    match op.prepare::<C>(nodes).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let state = keep(&mut |i| prep.checkpoint(&inputs[i]));
            prep.finish(state, forward(inputs.map(|t| t.into_primitive())))
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(inputs.map(|t| t.into_primitive()))),
    }
}

/// Register each gradient in `values` for the parent in the same position, where that
/// parent needs one.
fn register<B: Backend, S, const N: usize>(
    ops: Ops<S, N>,
    grads: &mut Gradients,
    values: [FloatTensor<B>; N],
) {
    for (parent, value) in ops.parents.into_iter().zip(values) {
        if let Some(node) = parent {
            grads.register::<B>(node.id, value);
        }
    }
}

/// The three gradients of an operation `(x, p, q)` from `x`, `p`, the output's gradient
/// and the operation's setting (`()` when it has none).
pub(crate) type ThreeGradients<B, E> = fn(
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    E,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

/// The backward step of an operation of three inputs that keeps the first two as
/// checkpoints and gets all three gradients from one call.
#[derive(Debug)]
struct KeepFirstTwo<B: Backend, E> {
    gradients: ThreeGradients<B, E>,
    setting: E,
}

impl<B: Backend, E: Copy + Send + std::fmt::Debug + 'static> Backward<B, 3> for KeepFirstTwo<B, E> {
    type State = (NodeId, NodeId);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let grad = grads.consume::<B>(&ops.node);
        let x = checkpointer.retrieve_node_output(ops.state.0);
        let p = checkpointer.retrieve_node_output(ops.state.1);
        let (dx, dp, dq) = (self.gradients)(x, p, grad, self.setting);
        register::<B, _, 3>(ops, grads, [dx, dp, dq]);
    }
}

/// Run `forward` on the inputs `(x, p, q)` and record it on the graph with a backward
/// step that keeps `x` and `p` and gets all three gradients from `gradients`, given
/// `setting`.
pub(crate) fn record_keeping_first_two<B, C, E>(
    inputs: [FloatTensor<Autodiff<B, C>>; 3],
    setting: E,
    forward: impl FnOnce([FloatTensor<B>; 3]) -> FloatTensor<B>,
    gradients: ThreeGradients<B, E>,
) -> FloatTensor<Autodiff<B, C>>
where
    B: Backend,
    C: CheckpointStrategy,
    E: Copy + Send + std::fmt::Debug + 'static,
{
    let op = KeepFirstTwo { gradients, setting };
    record::<B, C, _, 3>(op, inputs, |keep| (keep(0), keep(1)), forward)
}

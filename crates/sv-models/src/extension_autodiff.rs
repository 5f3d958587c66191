//! What the autodiff halves of the backend extensions share: recording an operation whose
//! backward pass keeps some of its inputs as checkpoints, and handing its gradients to
//! the parents that need them.

use burn::backend::Backend;
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
pub(crate) fn register<B: Backend, S, const N: usize>(
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

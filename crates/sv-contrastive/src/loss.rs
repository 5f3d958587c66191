//! The supervised-contrastive (InfoNCE) loss with synthetic hard negatives.

use burn::tensor::{Tensor, TensorData};

use crate::ContrastiveError;

/// Settings of the auxiliary contrastive term.
#[derive(Debug, Clone, PartialEq)]
pub struct ContrastiveSettings {
    /// Softmax temperature.
    pub temperature: f32,
    /// Weight of the term beside cross-entropy.
    pub weight: f32,
    /// Features the bank remembers.
    pub bank_size: usize,
    /// Synthetic negatives per anchor.
    pub negatives_per_anchor: usize,
    /// Range of the mixing weight `a` of a bank feature against the anchor.
    pub alpha: (f32, f32),
}

impl Default for ContrastiveSettings {
    fn default() -> Self {
        Self {
            temperature: 0.07,
            weight: 0.1,
            bank_size: 4096,
            negatives_per_anchor: 8,
            alpha: (0.5, 0.9),
        }
    }
}

/// A masked-out logit: far below any similarity / temperature, finite so that a zero
/// weight times it stays zero.
const MASKED: f32 = -1e9;

/// The supervised-contrastive loss of `features` (B × D, not yet normalised; gradients
/// flow through them) with `labels`: for each anchor with at least one other batch
/// sample of its label, minus the mean over those positives of the log-softmax of
/// similarity / `temperature`, where the softmax runs over all other batch samples and
/// the anchor's synthetic `negatives` (B × M × D, constants, `filled[i]` of them valid;
/// `None` for plain SupCon). The mean over such anchors; zero when there is none.
pub fn supcon_loss(
    features: Tensor<2>,
    labels: &[u8],
    negatives: Option<(&[f32], &[usize], usize)>,
    temperature: f32,
) -> Result<Tensor<1>, ContrastiveError> {
    let [b, d] = features.dims();
    if labels.len() != b {
        return Err(ContrastiveError::Shape(format!(
            "{} labels for a batch of {b}",
            labels.len()
        )));
    }
    if temperature <= 0.0 {
        return Err(ContrastiveError::Shape(format!(
            "temperature {temperature} must be positive"
        )));
    }
    let device = features.device();
    let norm = features.clone().powi_scalar(2).sum_dim(1).sqrt();
    let z = features.div(norm);
    let mut logits = z
        .clone()
        .matmul(z.clone().transpose())
        .div_scalar(temperature);
    let m = match negatives {
        None => 0,
        Some((values, filled, m)) => {
            if values.len() != b * m * d || filled.len() != b {
                return Err(ContrastiveError::Shape(format!(
                    "negatives: {} values and {} counts for {b} × {m} × {d}",
                    values.len(),
                    filled.len()
                )));
            }
            if m > 0 {
                let negs =
                    Tensor::<3>::from_data(TensorData::new(values.to_vec(), [b, m, d]), &device);
                let neg_logits = (z.clone().unsqueeze_dim::<3>(1) * negs)
                    .sum_dim(2)
                    .reshape([b, m])
                    .div_scalar(temperature);
                logits = Tensor::cat(vec![logits, neg_logits], 1);
            }
            m
        }
    };
    let width = b + m;
    let mut mask = vec![0f32; b * width];
    let mut weights = vec![0f32; b * width];
    let mut anchors = 0usize;
    for i in 0..b {
        mask[i * width + i] = MASKED;
        if let Some((_, filled, _)) = negatives {
            for slot in filled[i].min(m)..m {
                mask[i * width + b + slot] = MASKED;
            }
        }
        let positives: Vec<usize> = (0..b)
            .filter(|&j| j != i && labels[j] == labels[i])
            .collect();
        if !positives.is_empty() {
            anchors += 1;
            for j in &positives {
                weights[i * width + j] = 1.0 / positives.len() as f32;
            }
        }
    }
    if anchors == 0 {
        return Ok((logits.sum() * 0.0).reshape([1]));
    }
    let logits = logits + Tensor::<2>::from_data(TensorData::new(mask, [b, width]), &device);
    let max = logits.clone().max_dim(1).detach();
    let shifted = logits - max;
    let log_sum = shifted.clone().exp().sum_dim(1).log();
    let log_prob = shifted - log_sum;
    let weights = Tensor::<2>::from_data(TensorData::new(weights, [b, width]), &device);
    Ok((log_prob * weights)
        .sum()
        .div_scalar(-(anchors as f32))
        .reshape([1]))
}

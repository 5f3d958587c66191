#!/usr/bin/env python3
"""PyTorch reference for sv-contrastive: feature-space synthetic hard negatives and the
supervised-contrastive (InfoNCE) loss with them, on fixed tensors.

    tools/.venv/bin/python tools/gen_contrastive_fixtures.py

Writes tests/fixtures/contrastive/reference.json with the inputs (features, labels, a
feature bank pushed in order into a bank of capacity 16, mixing weights), the synthetic
negatives, and the loss and its gradient with respect to the features, with and without
the negatives, at temperature 0.07.

Definitions (as sv-contrastive implements them):
- z = features / ||features||.
- For anchor i: the bank's entries of the other class, most similar to z_i first (ties:
  older first), the first M of them; negative = normalise(a * b + (1 - a) * z_i) with a
  in [0.5, 0.9], built from detached values.
- loss_i = -1/|P(i)| * sum_{p in P(i)} log(exp(z_i.z_p/t) / sum_{a in A(i)} exp(z_i.z_a/t)),
  P(i) = other batch samples of i's label, A(i) = all other batch samples and i's
  negatives; the loss is the mean over anchors with at least one positive.
"""

import json
from pathlib import Path

import torch

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "contrastive"
T = 0.07
CAPACITY = 16
M = 3


def supcon(features, labels, negatives):
    z = features / features.norm(dim=1, keepdim=True)
    b = z.shape[0]
    logits = z @ z.T / T
    if negatives is not None:
        neg = torch.einsum("bd,bmd->bm", z, negatives) / T
        logits = torch.cat([logits, neg], dim=1)
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    self_mask[torch.arange(b), torch.arange(b)] = True
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    same = labels[:, None] == labels[None, :]
    pos = torch.zeros_like(logits, dtype=torch.bool)
    pos[:, :b] = same & ~torch.eye(b, dtype=torch.bool)
    count = pos.sum(dim=1)
    has = count > 0
    per_anchor = -(log_prob.masked_fill(~pos, 0.0).sum(dim=1)[has]) / count[has]
    return per_anchor.mean()


def main():
    g = torch.Generator().manual_seed(72)
    b, d = 8, 16
    features = torch.randn(b, d, generator=g)
    labels = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1])
    bank = torch.randn(20, d, generator=g)
    bank_labels = torch.tensor([i % 2 for i in range(20)])
    alphas = 0.5 + 0.4 * torch.rand(b, M, generator=g)

    kept = bank[-CAPACITY:] / bank[-CAPACITY:].norm(dim=1, keepdim=True)
    kept_labels = bank_labels[-CAPACITY:]
    z = (features / features.norm(dim=1, keepdim=True)).detach()
    negatives = torch.zeros(b, M, d)
    for i in range(b):
        other = [j for j in range(CAPACITY) if kept_labels[j] != labels[i]]
        sims = [(-(float(z[i] @ kept[j])), j) for j in other]
        chosen = [j for _, j in sorted(sims)[:M]]
        for m, j in enumerate(chosen):
            a = alphas[i, m]
            v = a * kept[j] + (1 - a) * z[i]
            negatives[i, m] = v / v.norm()

    out = {
        "temperature": T, "capacity": CAPACITY, "per_anchor": M,
        "features": features.tolist(), "labels": labels.tolist(),
        "bank": bank.tolist(), "bank_labels": bank_labels.tolist(),
        "alphas": alphas.tolist(), "negatives": negatives.tolist(),
    }
    for name, negs in (("with_negatives", negatives), ("without_negatives", None)):
        f = features.clone().requires_grad_(True)
        loss = supcon(f, labels, negs)
        loss.backward()
        out[name] = {"loss": float(loss.detach()), "grad": f.grad.tolist()}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "reference.json").write_text(json.dumps(out) + "\n")
    print({k: out[k]["loss"] for k in ("with_negatives", "without_negatives")})


if __name__ == "__main__":
    main()

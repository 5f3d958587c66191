#!/usr/bin/env python3
"""Reference numbers for sv-train, from scikit-learn and PyTorch. Run with the reference
venv (`tools/.venv`, plus `pip install scikit-learn`); outputs are small and committed.

    tools/.venv/bin/python tools/gen_train_fixtures.py metrics
    tools/.venv/bin/python tools/gen_train_fixtures.py adamw

Written under tests/fixtures/train/:
  metrics.json       predictions (with ties, one-class subsets) and scikit-learn's
                     accuracy, balanced accuracy, MCC, F1, ROC-AUC, Brier score and
                     confusion matrix; ECE by its definition in numpy
  adamw_model.*      the tiny DINOv2 classifier fixture after two AdamW steps (lr 1e-3,
                     layer decay 0.65, weight decay 0.05 except biases, norms, tokens
                     and position embeddings, global-norm clipping at 0.5) on the batch
                     in adamw_batch.safetensors, with the gradient norms before clipping
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "train"


def metrics() -> None:
    from sklearn import metrics as m

    rng = np.random.default_rng(3)
    cases = []
    y = rng.integers(0, 2, 200)
    p = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.25, 200), 0, 1)
    p[:30] = np.round(p[:30], 1)  # ties
    p[30] = 0.5  # exactly on the threshold: not roadwork
    cases.append(("noisy", p, y))
    cases.append(("one_class", p[y == 1][:20], np.ones(20, dtype=int)))
    cases.append(("inverted", 1 - p[:50], y[:50]))
    out = []
    for name, p, y in cases:
        pred = (p > 0.5).astype(int)
        bins = np.minimum((p * 10).astype(int), 9)
        ece = sum(abs(y[bins == b].sum() - p[bins == b].sum()) for b in range(10)) / len(p)
        tn, fp, fn, tp = m.confusion_matrix(y, pred, labels=[0, 1]).ravel()
        out.append({
            "name": name, "p": p.tolist(), "y": y.tolist(),
            "accuracy": m.accuracy_score(y, pred),
            "balanced_accuracy": m.balanced_accuracy_score(y, pred) if len(set(y)) > 1 else None,
            "mcc": m.matthews_corrcoef(y, pred),
            "f1": m.f1_score(y, pred, zero_division=0),
            "roc_auc": m.roc_auc_score(y, p) if len(set(y)) > 1 else None,
            "brier": m.brier_score_loss(y, p),
            "ece": float(ece),
            "confusion": {"tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn)},
        })
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "metrics.json").write_text(json.dumps(out, indent=1) + "\n")


def layer_id(name: str, depth: int) -> int:
    """BEiT/timm layer ids: embeddings 0, block i → i + 1, final norm and head depth + 1."""
    if ".embeddings." in name or name.startswith("dinov2_with_registers.embeddings"):
        return 0
    if ".encoder.layer." in name:
        return int(name.split(".encoder.layer.")[1].split(".")[0]) + 1
    return depth + 1


def no_decay(name: str, param) -> bool:
    """Biases, norms, LayerScale (1-D), tokens and position embeddings: no weight decay."""
    return param.ndim <= 1 or "embeddings" in name and "patch_embeddings" not in name


def adamw() -> None:
    import torch
    from safetensors.torch import load_file, save_file
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersForImageClassification

    dino = ROOT / "tests" / "fixtures" / "dinov2"
    cfg = Dinov2WithRegistersConfig.from_json_file(dino / "hf_mlp.config.json")
    model = Dinov2WithRegistersForImageClassification(cfg).eval()
    model.load_state_dict(load_file(dino / "hf_mlp.safetensors"))
    model.train()  # dropout and drop path are 0 in this config
    depth = cfg.num_hidden_layers
    lr, decay, wd, clip = 1e-3, 0.65, 0.05, 0.5
    groups = {}
    for name, param in model.named_parameters():
        lid = layer_id(name, depth)
        nd = no_decay(name, param)
        key = (lid, nd)
        groups.setdefault(key, {"params": [], "names": [], "lr": lr * decay ** (depth + 1 - lid),
                                "weight_decay": 0.0 if nd else wd})
        groups[key]["params"].append(param)
        groups[key]["names"].append(name)
    opt = torch.optim.AdamW([{k: v for k, v in g.items() if k != "names"} for g in groups.values()],
                            lr=lr, betas=(0.9, 0.999), eps=1e-8)
    g = torch.Generator().manual_seed(0)
    pixels = torch.randn(4, 3, 56, 56, generator=g)
    labels = torch.tensor([1, 0, 1, 1])
    norms = []
    for step in range(2):
        opt.zero_grad()
        logits = model(pixel_values=pixels).logits
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip)))
        opt.step()
    OUT.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()},
              OUT / "adamw_model.safetensors")
    shutil.copy(dino / "hf_mlp.config.json", OUT / "adamw_model.config.json")
    save_file({"pixels": pixels, "labels": labels.to(torch.float32),
               "grad_norms": torch.tensor(norms, dtype=torch.float64)}, OUT / "adamw_batch.safetensors")
    print("layer groups:", {k: (round(v["lr"], 8), v["weight_decay"], v["names"][:2]) for k, v in groups.items()})
    print("gradient norms before clipping:", norms)


if __name__ == "__main__":
    {"metrics": metrics, "adamw": adamw}[sys.argv[1]]()

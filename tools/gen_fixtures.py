#!/usr/bin/env python3
"""Generate the reference fixtures under tests/fixtures/ with the reference libraries.

Run through tools/gen_fixtures.sh, which creates the pinned venv. Everything written
here is small and committed, so CI never needs torch, transformers or timm.

Written:
  dinov2/<name>.{safetensors,bin,pth}   tiny random DINOv2-with-registers checkpoints
                                        in HF, timm and original (Meta) layouts
  dinov2/<name>.config.json             the HF config (HF layouts only)
  dinov2/<name>.expected.safetensors    inputs and reference outputs
  dinov2/hub/preprocessor_config.json    the processor of the repo served in download tests
  dinov2/real_configs.json              parameter counts and shapes of the real configs
  images/*                              real photos from scikit-image's data folder
  preprocess/<image>.safetensors        reference pixel tensors (HF BitImageProcessor)
  convnext/<name>.{safetensors,bin}     tiny random ConvNeXt-V2 checkpoints, HF and timm layouts
                                        (timm with linear and with 1x1-conv MLP)
  convnext/<name>.expected.safetensors  inputs and reference outputs
  convnext/real_configs.json            parameter counts of the released sizes
  preprocess/convnext<size>_<image>.safetensors
                                        reference pixel tensors (HF ConvNextImageProcessor)
  ensemble/expected.safetensors         the DINOv2 + ConvNeXt ensemble pipeline on real photos,
                                        and a log-loss fit of weights and temperatures (LBFGS)

Usage: gen_fixtures.py [section ...] with sections dinov2, images, convnext, ensemble
(default: all, in that order).
"""

import io
import json
import math
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import timm
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from transformers import (
    BitImageProcessor,
    ConvNextImageProcessor,
    ConvNextV2Config,
    ConvNextV2ForImageClassification,
    ConvNextV2Model,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersForImageClassification,
    Dinov2WithRegistersModel,
)

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures"
DINO = FIX / "dinov2"
IMAGES = FIX / "images"
PRE = FIX / "preprocess"

# Tiny configuration: 4x4 patch grid at 56 px, 3 heads of 16, 2 blocks.
TINY = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=3, image_size=56, patch_size=14)
NATIVE = (56, 56)
OTHER = (42, 70)  # H x W: a 3x5 grid forces position-embedding interpolation.
BATCH = 2


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Give every parameter a random value so that each one matters in the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if "grn" in name:
                p.copy_(0.5 * noise)
            elif name.endswith("lambda1") or name.endswith("gamma") and "ls" in name:
                p.copy_(0.5 + 0.5 * noise.abs())
            elif ("norm" in name or "layernorm" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * noise)
            elif p.ndim == 1:
                p.copy_(0.1 * noise)
            else:
                fan_in = p[0].numel() if p.ndim > 1 else p.numel()
                p.copy_(noise / math.sqrt(fan_in))


def inputs(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "pixels_native": torch.randn((BATCH, 3) + NATIVE, generator=g),
        "pixels_other": torch.randn((BATCH, 3) + OTHER, generator=g),
    }


def hf_outputs(model: Dinov2WithRegistersForImageClassification, pixels: dict) -> dict:
    model.eval()
    out = {}
    r = model.config.num_register_tokens
    with torch.no_grad():
        for tag, x in pixels.items():
            seq = model.dinov2_with_registers(x).last_hidden_state
            cls, patches = seq[:, 0], seq[:, 1 + r :]
            pooled = torch.cat([cls, patches.mean(dim=1)], dim=1)
            logits = model(x).logits
            out[f"{tag}.cls"] = cls
            out[f"{tag}.registers"] = seq[:, 1 : 1 + r]
            out[f"{tag}.patches"] = patches
            out[f"{tag}.pooled"] = pooled
            out[f"{tag}.logits"] = logits
    return out


def timm_outputs(model, pixels: dict) -> dict:
    model.eval()
    out = {}
    r = model.num_reg_tokens
    with torch.no_grad():
        for tag, x in pixels.items():
            seq = model.forward_features(x)
            cls, patches = seq[:, 0], seq[:, 1 + r :]
            out[f"{tag}.cls"] = cls
            out[f"{tag}.registers"] = seq[:, 1 : 1 + r]
            out[f"{tag}.patches"] = patches
            out[f"{tag}.pooled"] = torch.cat([cls, patches.mean(dim=1)], dim=1)
    return out


def save_expected(name: str, pixels: dict, outputs: dict, meta: dict) -> None:
    tensors = {k: v.contiguous() for k, v in {**pixels, **outputs}.items()}
    save_file(tensors, DINO / f"{name}.expected.safetensors", metadata={k: str(v) for k, v in meta.items()})


def hf_fixtures() -> None:
    for name, extra, seed in [
        ("hf_mlp", dict(use_swiglu_ffn=False), 1),
        ("hf_swiglu", dict(use_swiglu_ffn=True), 2),
    ]:
        torch.manual_seed(seed)
        cfg = Dinov2WithRegistersConfig(**TINY, **extra, num_labels=2,
                                        id2label={0: "None", 1: "Roadwork"},
                                        label2id={"None": 0, "Roadwork": 1})
        model = Dinov2WithRegistersForImageClassification(cfg)
        randomise(model, seed)
        pixels = inputs(100 + seed)
        outs = hf_outputs(model, pixels)
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        # Classification layout with the `dinov2_with_registers.` prefix, as safetensors.
        save_file(sd, DINO / f"{name}.safetensors", metadata={"format": "pt"})
        cfg.to_json_file(DINO / f"{name}.config.json")
        save_expected(name, pixels, outs, {"layout": "hf", "head": True})

    # Base model (no prefix, no classifier) as a PyTorch .bin, from the MLP model's weights.
    torch.manual_seed(1)
    cfg = Dinov2WithRegistersConfig(**TINY, num_labels=2)
    cls_model = Dinov2WithRegistersForImageClassification(cfg)
    randomise(cls_model, 1)
    base: Dinov2WithRegistersModel = cls_model.dinov2_with_registers
    torch.save({k: v.contiguous() for k, v in base.state_dict().items()}, DINO / "hf_base.bin")

    # The download tests serve an HF-style repo of hf_mlp.safetensors (as model.safetensors),
    # hf_mlp.config.json (as config.json) and this preprocessor config.
    hub = DINO / "hub"
    hub.mkdir(parents=True, exist_ok=True)
    BitImageProcessor.from_dict(PROCESSOR).to_json_file(hub / "preprocessor_config.json")


def timm_fixtures() -> dict:
    """timm models and, from the same weights, the original Meta layout."""
    out = {}
    for name, swiglu, seed in [("timm_mlp", False, 3), ("timm_swiglu", True, 4)]:
        torch.manual_seed(seed)
        kw = dict(img_size=56, patch_size=14, embed_dim=48, depth=2, num_heads=3, init_values=1e-5,
                  reg_tokens=4, no_embed_class=True, num_classes=0, dynamic_img_size=True)
        if swiglu:
            from timm.layers import SwiGLUPacked
            # Packed hidden width 2 * 128, as vit_giant_patch14_reg4_dinov2 does for 1536.
            kw.update(mlp_ratio=256 / 48, mlp_layer=SwiGLUPacked, act_layer=torch.nn.SiLU)
        model = timm.models.vision_transformer.VisionTransformer(**kw)
        randomise(model, seed)
        pixels = inputs(100 + seed)
        outs = timm_outputs(model, pixels)
        sd = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(sd, DINO / f"{name}.safetensors")
        save_expected(name, pixels, outs, {"layout": "timm", "head": False})
        out[name] = (sd, pixels, outs)

    # Original Meta naming (register_tokens, pos_embed with a CLS slot, w12/w3 for SwiGLU),
    # from the timm weights: the inverse of timm's _convert_dinov2.
    for tname, oname in [("timm_mlp", "original_mlp"), ("timm_swiglu", "original_swiglu")]:
        sd, pixels, outs = out[tname]
        g = torch.Generator().manual_seed(7)
        d = sd["cls_token"].shape[-1]
        cls_pos = 0.1 * torch.randn(1, 1, d, generator=g)
        orig = {
            "cls_token": sd["cls_token"] - cls_pos,
            "pos_embed": torch.cat([cls_pos, sd["pos_embed"]], dim=1),
            "register_tokens": sd["reg_token"],
            "mask_token": 0.1 * torch.randn(1, d, generator=g),
        }
        for k, v in sd.items():
            if k in ("cls_token", "pos_embed", "reg_token"):
                continue
            k = k.replace("mlp.fc1", "mlp.w12").replace("mlp.fc2", "mlp.w3") if "swiglu" in tname else k
            orig[k] = v
        torch.save({k: v.contiguous() for k, v in orig.items()}, DINO / f"{oname}.pth")
        save_expected(oname, pixels, outs, {"layout": "original", "head": False})
    return out


def real_configs() -> None:
    """Parameter counts of the four real configs, from the reference, on the meta device."""
    table = {}
    for size, (d, layers, heads, swiglu) in {
        "small": (384, 12, 6, False),
        "base": (768, 12, 12, False),
        "large": (1024, 24, 16, False),
        "giant": (1536, 40, 24, True),
    }.items():
        cfg = Dinov2WithRegistersConfig(hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                                        use_swiglu_ffn=swiglu, image_size=518, patch_size=14,
                                        num_labels=2)
        with torch.device("meta"):
            model = Dinov2WithRegistersForImageClassification(cfg)
        backbone = sum(p.numel() for p in model.dinov2_with_registers.parameters())
        total = sum(p.numel() for p in model.parameters())
        mlp = model.dinov2_with_registers.encoder.layer[0].mlp
        hidden = (mlp.weights_out.in_features if swiglu else mlp.fc1.out_features)
        table[size] = {"hidden_size": d, "layers": layers, "heads": heads, "swiglu": swiglu,
                       "mlp_hidden": hidden, "backbone_params": backbone, "classifier_params": total,
                       "position_embeddings": list(model.dinov2_with_registers.embeddings.position_embeddings.shape)}
    (DINO / "real_configs.json").write_text(json.dumps(table, indent=2) + "\n")


PROCESSOR = {
    # facebook/dinov2-with-registers-* preprocessor_config.json
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 256},
    "image_processor_type": "BitImageProcessor",
}


def images_and_preprocessing() -> None:
    """Real photos from the scikit-image wheel, and the reference pixel tensors."""
    IMAGES.mkdir(parents=True, exist_ok=True)
    PRE.mkdir(parents=True, exist_ok=True)
    wheel = Path(os.environ["SKIMAGE_WHEEL"])
    with zipfile.ZipFile(wheel) as z:
        for member, name in [("skimage/data/chelsea.png", "chelsea.png"),
                             ("skimage/data/rocket.jpg", "rocket.jpg"),
                             ("skimage/data/camera.png", "camera_grey.png")]:
            (IMAGES / name).write_bytes(z.read(member))
    # A wide JPEG (landscape, as street photos are), re-encoded by PIL at quality 90.
    Image.open(IMAGES / "chelsea.png").convert("RGB").save(IMAGES / "chelsea_q90.jpg", quality=90)
    processor = BitImageProcessor.from_dict(PROCESSOR)
    for name in ["chelsea.png", "rocket.jpg", "camera_grey.png", "chelsea_q90.jpg"]:
        img = Image.open(IMAGES / name)
        pix = processor(images=img, return_tensors="pt")["pixel_values"]
        save_file({"pixel_values": pix.contiguous()}, PRE / f"{Path(name).stem}.safetensors",
                  metadata={"image": name})


# ---------------------------------------------------------------- ConvNeXt-V2

CNX = FIX / "convnext"
# Tiny ConvNeXt-V2: widths that are not multiples of 16 exercise the kernels' channel tails.
CNX_DEPTHS = [2, 1, 2, 1]
CNX_DIMS = [8, 24, 40, 48]
CNX_SIZES = {"native": (64, 64), "wide": (64, 96), "odd": (70, 70)}  # 70 floors at every stride


def cnx_inputs(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {f"pixels_{tag}": torch.randn((BATCH, 3) + hw, generator=g) for tag, hw in CNX_SIZES.items()}


def cnx_save_expected(name: str, pixels: dict, outputs: dict, meta: dict) -> None:
    tensors = {k: v.contiguous() for k, v in {**pixels, **outputs}.items()}
    save_file(tensors, CNX / f"{name}.expected.safetensors", metadata={k: str(v) for k, v in meta.items()})


def convnext_fixtures() -> None:
    CNX.mkdir(parents=True, exist_ok=True)
    # HF transformers: classifier as safetensors (+ config.json), backbone as .bin.
    torch.manual_seed(11)
    cfg = ConvNextV2Config(depths=CNX_DEPTHS, hidden_sizes=CNX_DIMS, num_labels=2,
                           id2label={0: "None", 1: "Roadwork"}, label2id={"None": 0, "Roadwork": 1})
    model = ConvNextV2ForImageClassification(cfg).eval()
    randomise(model, 11)
    pixels = cnx_inputs(111)
    out = {}
    with torch.no_grad():
        for tag, x in pixels.items():
            base = model.convnextv2(x)
            out[f"{tag}.features"] = base.last_hidden_state
            out[f"{tag}.pooled"] = base.pooler_output
            out[f"{tag}.logits"] = model(x).logits
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, CNX / "hf_cls.safetensors",
              metadata={"format": "pt"})
    cfg.to_json_file(CNX / "hf_cls.config.json")
    cnx_save_expected("hf_cls", pixels, out, {"layout": "hf", "head": True})
    backbone: ConvNextV2Model = model.convnextv2
    torch.save({k: v.contiguous() for k, v in backbone.state_dict().items()}, CNX / "hf_base.bin")

    # timm: linear MLP as safetensors, 1x1-conv MLP (atto...nano style) as .bin.
    from timm.models.convnext import ConvNeXt
    for name, conv_mlp, seed, save in [("timm_linear", False, 12, "safetensors"), ("timm_convmlp", True, 13, "bin")]:
        torch.manual_seed(seed)
        m = ConvNeXt(depths=CNX_DEPTHS, dims=CNX_DIMS, use_grn=True, ls_init_value=None,
                     conv_mlp=conv_mlp, num_classes=2).eval()
        randomise(m, seed)
        pixels = cnx_inputs(100 + seed)
        out = {}
        with torch.no_grad():
            for tag, x in pixels.items():
                feats = m.forward_features(x)
                out[f"{tag}.features"] = feats
                out[f"{tag}.pooled"] = m.forward_head(feats, pre_logits=True)
                out[f"{tag}.logits"] = m(x)
        sd = {k: v.contiguous() for k, v in m.state_dict().items()}
        if save == "safetensors":
            save_file(sd, CNX / f"{name}.safetensors")
        else:
            torch.save(sd, CNX / f"{name}.bin")
        cnx_save_expected(name, pixels, out, {"layout": "timm", "head": True})

    # Parameter counts of the released sizes, from the reference on the meta device.
    sizes = {
        "atto": ([2, 2, 6, 2], [40, 80, 160, 320]),
        "femto": ([2, 2, 6, 2], [48, 96, 192, 384]),
        "pico": ([2, 2, 6, 2], [64, 128, 256, 512]),
        "nano": ([2, 2, 8, 2], [80, 160, 320, 640]),
        "tiny": ([3, 3, 9, 3], [96, 192, 384, 768]),
        "base": ([3, 3, 27, 3], [128, 256, 512, 1024]),
        "large": ([3, 3, 27, 3], [192, 384, 768, 1536]),
        "huge": ([3, 3, 27, 3], [352, 704, 1408, 2816]),
    }
    table = {}
    for size, (depths, dims) in sizes.items():
        with torch.device("meta"):
            hf = ConvNextV2Model(ConvNextV2Config(depths=depths, hidden_sizes=dims))
            tm = timm.create_model(f"convnextv2_{size}", pretrained=False, num_classes=0)
        table[size] = {"depths": depths, "dims": dims,
                       "hf_backbone_params": sum(p.numel() for p in hf.parameters()),
                       "timm_backbone_params": sum(p.numel() for p in tm.parameters())}
    (CNX / "real_configs.json").write_text(json.dumps(table, indent=2) + "\n")


def convnext_preprocessing() -> None:
    """ConvNextImageProcessor: crop_pct resize + centre crop below 384, plain resize from 384."""
    PRE.mkdir(parents=True, exist_ok=True)
    for size in (224, 384):
        proc = ConvNextImageProcessor(size={"shortest_edge": size}, crop_pct=0.875, resample=3)
        proc.to_json_file(PRE / f"convnext{size}.preprocessor_config.json")
        for name in ["chelsea.png", "camera_grey.png"]:
            # This processor has no RGB conversion; ours converts every image to RGB first.
            img = Image.open(IMAGES / name).convert("RGB")
            pix = proc(images=img, return_tensors="pt")["pixel_values"]
            save_file({"pixel_values": pix.contiguous()},
                      PRE / f"convnext{size}_{Path(name).stem}.safetensors", metadata={"image": name})


# ---------------------------------------------------------------- ensemble

ENS = FIX / "ensemble"
ENS_WEIGHTS = (0.6, 0.4)  # DINOv2, ConvNeXt: the defaults by architecture
ENS_TEMPS = (1.5, 0.7)


def tempered(p: torch.Tensor, t: float) -> torch.Tensor:
    p = p.double().clamp(1e-7, 1 - 1e-7)
    return torch.sigmoid(torch.log(p / (1 - p)) / t)


def ensemble_fixtures() -> None:
    """The whole pipeline with the reference libraries: each member's processor, model and
    softmax, temperature scaling and the weighted average; and a log-loss fit by LBFGS."""
    ENS.mkdir(parents=True, exist_ok=True)
    # Rebuild the fixture models from their committed files.
    from safetensors.torch import load_file
    dcfg = Dinov2WithRegistersConfig.from_json_file(DINO / "hf_mlp.config.json")
    dino = Dinov2WithRegistersForImageClassification(dcfg).eval()
    dino.load_state_dict(load_file(DINO / "hf_mlp.safetensors"))
    ccfg = ConvNextV2Config.from_json_file(CNX / "hf_cls.config.json")
    cnx = ConvNextV2ForImageClassification(ccfg).eval()
    cnx.load_state_dict(load_file(CNX / "hf_cls.safetensors"))
    bit = BitImageProcessor.from_dict(PROCESSOR)
    cnx384 = ConvNextImageProcessor.from_json_file(PRE / "convnext384.preprocessor_config.json")
    cnx224 = ConvNextImageProcessor.from_json_file(PRE / "convnext224.preprocessor_config.json")
    images = [Image.open(IMAGES / n).convert("RGB") for n in ["chelsea.png", "camera_grey.png"]]
    out = {}
    with torch.no_grad():
        pd = dino(bit(images=images, return_tensors="pt")["pixel_values"]).logits.softmax(-1)[:, 1]
        # shared: one processor; renorm: same resize, other mean/std; mixed: other size.
        for tag, proc in [("shared", bit), ("renorm", cnx224), ("mixed", cnx384)]:
            pc = cnx(proc(images=images, return_tensors="pt")["pixel_values"]).logits.softmax(-1)[:, 1]
            members = torch.stack([tempered(pd, ENS_TEMPS[0]), tempered(pc, ENS_TEMPS[1])])
            w = torch.tensor(ENS_WEIGHTS, dtype=torch.float64)
            out[f"{tag}.members"] = members.float()
            out[f"{tag}.combined"] = ((w[:, None] * members).sum(0) / w.sum()).float()

    # Fit: synthetic validation predictions of two members, labels drawn from a known model.
    g = torch.Generator().manual_seed(21)
    n = 400
    labels = torch.rand(n, generator=g, dtype=torch.float64) < 0.5
    y = labels.double()
    signal = 2.0 * y - 1.0
    z1 = 1.2 * signal + 2.0 * torch.randn(n, generator=g, dtype=torch.float64)   # over-confident
    z2 = 0.3 * signal + 0.5 * torch.randn(n, generator=g, dtype=torch.float64)   # under-confident
    probs = torch.stack([torch.sigmoid(z1), torch.sigmoid(z2)])
    x = torch.zeros(4, dtype=torch.float64, requires_grad=True)  # (a1, a2, log T1, log T2)
    with torch.no_grad():
        x[:2] = torch.log(torch.tensor([0.5, 0.5], dtype=torch.float64))

    def loss_fn():
        w = torch.softmax(x[:2], 0)
        t = torch.exp(x[2:])
        p = probs.clamp(1e-7, 1 - 1e-7)
        q = (w[:, None] * torch.sigmoid(torch.log(p / (1 - p)) / t[:, None])).sum(0).clamp(1e-7, 1 - 1e-7)
        return -(y * torch.log(q) + (1 - y) * torch.log(1 - q)).mean()

    opt = torch.optim.LBFGS([x], lr=1, max_iter=2000, tolerance_grad=1e-12, tolerance_change=1e-15,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        fit = {"fit.probs": probs, "fit.labels": y, "fit.weights": torch.softmax(x[:2], 0),
               "fit.temperatures": torch.exp(x[2:]), "fit.log_loss": loss_fn().reshape(1)}
    save_file({k: v.detach().contiguous() for k, v in {**out, **fit}.items()},
              ENS / "expected.safetensors",
              metadata={"weights": str(ENS_WEIGHTS), "temperatures": str(ENS_TEMPS),
                        "images": "chelsea.png,camera_grey.png"})


SECTIONS = {
    "dinov2": lambda: (hf_fixtures(), timm_fixtures(), real_configs()),
    "images": images_and_preprocessing,
    "convnext": lambda: (convnext_fixtures(), convnext_preprocessing()),
    "ensemble": ensemble_fixtures,
}


def main() -> None:
    DINO.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    chosen = sys.argv[1:] or list(SECTIONS)
    for section in chosen:
        if section not in SECTIONS:
            sys.exit(f"unknown section {section!r}; choose from {', '.join(SECTIONS)}")
        SECTIONS[section]()
    versions = {"torch": torch.__version__, "transformers": transformers.__version__, "timm": timm.__version__}
    (FIX / "VERSIONS.json").write_text(json.dumps(versions, indent=2) + "\n")
    print("fixtures written to", FIX, versions)


if __name__ == "__main__":
    sys.exit(main())

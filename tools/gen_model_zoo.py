"""Write tests/fixtures/zoo/: small random models of both families, in every layout
transformers and timm save, with the reference library's roadwork probabilities on
real-photo inputs (JPEG and PNG), for the differential test
`bins/sv-miner/tests/zoo_parity.rs`.

Configurations are sampled from a seed: widths whose heads are not 64 wide, 0 to 4
registers, SwiGLU or MLP, patch grids other than the input's, non-square inputs;
ConvNeXt-V2 stage widths and depths; processors with bilinear or bicubic resampling,
`crop_pct`, `do_resize` / `do_center_crop` as saved, several sizes; id2label in many
spellings (the roadwork label at index 0 or 1); timm ViT classifiers with a CLS-token
head or average pooling, timm ConvNeXt-V2. Weights are drawn wide enough that the
probabilities spread over (0, 1). Some models are stored in float16 or bfloat16.

The reference, per model, is what a Python user runs:
  transformers: AutoImageProcessor + AutoModelForImageClassification on
                Image.open(path).convert("RGB");
  timm:         the model's forward on the BitImageProcessor defaults (the preprocessing
                streetvision-rs documents for a checkpoint without a processor config).
The roadwork probability is the softmax entry of the label the generator named
roadwork (it knows; the test checks that our label rule finds the same one).

Run with the reference venv: tools/.venv/bin/python tools/gen_model_zoo.py
"""

import io
import json
import os
import random
import shutil

import numpy as np
import timm
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from transformers import (
    AutoImageProcessor,
    AutoModelForImageClassification,
    BitImageProcessor,
    ConvNextImageProcessor,
    ConvNextV2Config,
    ConvNextV2ForImageClassification,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersForImageClassification,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "zoo")
PHOTOS = os.path.join(ROOT, "tests", "fixtures", "images")

LABELS = [  # (id2label, index of roadwork)
    ({0: "no_roadwork", 1: "roadwork"}, 1),
    ({0: "Roadwork", 1: "None"}, 0),
    ({0: "road_work", 1: "background"}, 0),
    ({0: "not roadwork", 1: "ROADWORKS"}, 1),
    ({0: "LABEL_0", 1: "LABEL_1"}, 1),
    ({0: "none", 1: "Road Work"}, 1),
    ({0: "roadwork", 1: "no-roadwork"}, 0),
]


def write_inputs():
    """Real photos as a miner meets them, each as JPEG and as the PNG of PIL's decode."""
    os.makedirs(os.path.join(OUT, "images"))
    chelsea = Image.open(os.path.join(PHOTOS, "chelsea.png")).convert("RGB")
    rocket = Image.open(os.path.join(PHOTOS, "rocket.jpg")).convert("RGB")
    camera = Image.open(os.path.join(PHOTOS, "camera_grey.png")).convert("L")
    jpegs = {
        # What validators send: 224×224, quality 75, 4:2:0.
        "validator": (chelsea.crop((60, 0, 360, 300)).resize((224, 224), Image.BICUBIC),
                      dict(quality=75)),
        # Tall and wide photos (the shortest-edge resize at extreme ratios).
        "tall": (chelsea.resize((151, 389), Image.BICUBIC), dict(quality=90)),
        "wide": (rocket.resize((390, 158), Image.BICUBIC), dict(quality=85, subsampling="4:4:4")),
        "progressive": (rocket.resize((320, 240), Image.BICUBIC),
                        dict(quality=80, progressive=True, subsampling="4:2:2")),
        "grey": (camera.resize((250, 250), Image.BICUBIC), dict(quality=80)),
        "thin": (chelsea.resize((57, 301), Image.BICUBIC), dict(quality=95)),
    }
    names = []
    # Validator-style challenges: the four augmentation levels of the subnet's
    # image_transforms.py (centre crop; rotation ±20° with black corners and a random
    # resized crop of scale 0.2–1; then colour and down-up resize distortions; then
    # Gaussian noise and blur), each saved as 224×224 RGB JPEG at quality 75.
    import torchvision.transforms.v2 as T

    torch.manual_seed(75)
    sources = [chelsea, rocket, camera.convert("RGB")]
    for k in range(8):
        level = k % 4
        img = sources[k % len(sources)]
        side = min(img.size)
        if level == 0:
            img = T.CenterCrop(side)(img).resize((224, 224), Image.BICUBIC)
        else:
            img = T.RandomRotation(20, interpolation=T.InterpolationMode.NEAREST)(img)
            img = T.RandomResizedCrop(224, scale=(0.2, 1.0), ratio=(1.0, 1.0))(img)
            if level >= 2:
                img = T.ColorJitter(saturation=0.5, contrast=0.4)(img)
                img = img.resize((112, 112), Image.BILINEAR).resize((224, 224), Image.BILINEAR)
            if level >= 3:
                a = np.asarray(img).astype(np.float64)
                a += np.random.default_rng(k).normal(0, 8, a.shape)
                img = Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
                img = T.GaussianBlur(5, sigma=(0.5, 1.5))(img)
        name = f"challenge_level{level}_{k}.jpg"
        img.convert("RGB").save(os.path.join(OUT, "images", name), "JPEG", quality=75)
        names.append(name)
    for name, (img, kw) in jpegs.items():
        jpg = os.path.join(OUT, "images", f"{name}.jpg")
        img.save(jpg, "JPEG", **kw)
        Image.open(jpg).convert("RGB").save(os.path.join(OUT, "images", f"{name}.png"))
        names += [f"{name}.jpg", f"{name}.png"]
    return names


def spread_weights(model, rng_seed, head_scale=3.0):
    """Weights drawn wide enough that logits differ by several units between images."""
    g = torch.Generator().manual_seed(rng_seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:
                fan_in = p[0].numel()
                scale = head_scale if ("classifier" in name or name.startswith("head")) else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * scale / fan_in ** 0.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif "lambda1" in name or "gamma" in name and "grn" not in name:
                p.copy_(0.5 + 0.5 * torch.rand(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))


def labelled_model(model_class, cfg, i, rng):
    """A transformers classifier of `cfg` with id2label drawn from LABELS and weights
    seeded by `i`; returns it with the index of its roadwork label."""
    id2label, roadwork = rng.choice(LABELS)
    cfg.id2label = dict(id2label)
    cfg.label2id = {v: k for k, v in id2label.items()}
    torch.manual_seed(i)
    model = model_class(cfg)
    spread_weights(model, i)
    return model, roadwork


def store_dtype(rng):
    return rng.choice([torch.float32, torch.float16, torch.float16, torch.bfloat16])


def hf_reference(path, images):
    processor = AutoImageProcessor.from_pretrained(path)
    model = AutoModelForImageClassification.from_pretrained(path, dtype=torch.float32)
    model.eval()
    out = {}
    for name in images:
        img = Image.open(os.path.join(OUT, "images", name)).convert("RGB")
        inputs = processor(img, return_tensors="pt")
        with torch.no_grad():
            logits = model(**inputs).logits[0].double()
        out[name] = torch.softmax(logits, 0).tolist()
    return out, type(processor).__name__


def timm_reference(model, images):
    # What facebook/dinov2 repositories specify (and the documented default for a
    # checkpoint without preprocessor_config.json): shortest edge 256, centre crop 224,
    # bicubic, ImageNet mean and std. (BitImageProcessor's own defaults differ.)
    processor = BitImageProcessor(
        size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, resample=3,
        image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
    )
    model.eval()
    out = {}
    for name in images:
        img = Image.open(os.path.join(OUT, "images", name)).convert("RGB")
        pixels = processor(img, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            logits = model(pixels)[0].double()
        out[name] = torch.softmax(logits, 0).tolist()
    return out


def dinov2_hf(i, rng, images):
    head_dim = rng.choice([8, 12, 16])
    heads = rng.choice([1, 2, 3, 4])
    patch = rng.choice([14, 14, 8, 16])
    grid = rng.choice([2, 4, 7])
    cfg = Dinov2WithRegistersConfig(
        hidden_size=head_dim * heads,
        num_hidden_layers=rng.choice([1, 2]),
        num_attention_heads=heads,
        mlp_ratio=rng.choice([2, 4]),
        image_size=grid * patch,
        patch_size=patch,
        num_register_tokens=rng.choice([0, 1, 4]),
        use_swiglu_ffn=rng.random() < 0.3,
        qkv_bias=rng.random() < 0.8,
        layerscale_value=1.0,
    )
    model, roadwork = labelled_model(Dinov2WithRegistersForImageClassification, cfg, i, rng)
    shortest = rng.choice([224, 256, 98, 140])
    crop = rng.choice([224, 196, 112])
    crop = min(crop, shortest)
    proc = BitImageProcessor(
        size={"shortest_edge": shortest},
        crop_size={"height": crop, "width": crop},
        resample=rng.choice([2, 3, 3]),
        do_center_crop=rng.random() < 0.85,
        image_mean=rng.choice([[0.485, 0.456, 0.406], [0.5, 0.5, 0.5]]),
        image_std=rng.choice([[0.229, 0.224, 0.225], [0.5, 0.5, 0.5]]),
    )
    name = f"dinov2_hf_{i:02d}"
    path = os.path.join(OUT, name)
    model.to(store_dtype(rng)).save_pretrained(path)
    proc.save_pretrained(path)
    return name, path, roadwork, dict(layout="hf", heads=heads, registers=cfg.num_register_tokens,
                                      swiglu=cfg.use_swiglu_ffn, patch=patch, hidden=cfg.hidden_size)


def convnext_hf(i, rng, images):
    depths = [rng.choice([1, 1, 2]) for _ in range(4)]
    base = rng.choice([8, 12])
    cfg = ConvNextV2Config(
        hidden_sizes=[base, base * 2, base * 3, base * 4],
        depths=depths,
        image_size=224,
    )
    model, roadwork = labelled_model(ConvNextV2ForImageClassification, cfg, i, rng)
    kind = rng.random()
    kw = {}
    if kind < 0.25:
        proc = ConvNextImageProcessor()  # transformers' defaults: 384, bilinear
    else:
        kw = dict(
            size={"shortest_edge": rng.choice([224, 160, 288, 384])},
            crop_pct=rng.choice([0.875, 0.95, 1.0, None]),
            resample=rng.choice([2, 3]),
            image_mean=rng.choice([[0.485, 0.456, 0.406], [0.5, 0.5, 0.5]]),
            image_std=rng.choice([[0.229, 0.224, 0.225], [0.5, 0.5, 0.5]]),
            do_resize=rng.random() < 0.9,
        )
        proc = ConvNextImageProcessor(**kw)
    name = f"convnextv2_hf_{i:02d}"
    path = os.path.join(OUT, name)
    model.to(store_dtype(rng)).save_pretrained(path)
    proc.save_pretrained(path)
    return name, path, roadwork, dict(layout="hf", depths=depths, base=base,
                                      processor_args={k: str(v) for k, v in kw.items()})


def timm_vit(i, rng, images):
    head_dim = rng.choice([8, 16])
    heads = rng.choice([1, 2, 3])
    regs = rng.choice([0, 4])
    pool = rng.choice(["token", "avg"])
    model = timm.create_model(
        "vit_small_patch14_reg4_dinov2", pretrained=False, num_classes=2,
        embed_dim=head_dim * heads, depth=rng.choice([1, 2]), num_heads=heads,
        img_size=rng.choice([56, 98]), reg_tokens=regs, global_pool=pool,
        dynamic_img_size=True, init_values=1.0,
    )
    spread_weights(model, i)
    name = f"timm_vit_{i:02d}"
    path = os.path.join(OUT, name + ".safetensors")
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, path)
    refs = timm_reference(model, images)
    return name, path, 1, refs, dict(layout="timm", heads=heads, registers=regs, pool=pool,
                                     hidden=head_dim * heads)


def timm_convnext(i, rng, images):
    base = 8
    model = timm.create_model(
        "convnextv2_atto", pretrained=False, num_classes=2,
        depths=[rng.choice([1, 2]) for _ in range(4)], dims=[base, base * 2, base * 3, base * 4],
    )
    spread_weights(model, i)
    name = f"timm_convnextv2_{i:02d}"
    path = os.path.join(OUT, name + ".safetensors")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
    refs = timm_reference(model, images)
    return name, path, 1, refs, dict(layout="timm", base=base)


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    images = write_inputs()
    rng = random.Random(72)
    entries = []
    for i in range(12):
        name, path, roadwork, info = dinov2_hf(i, rng, images)
        refs, proc = hf_reference(path, images)
        entries.append(dict(name=name, path=name + "/model.safetensors", roadwork=roadwork,
                            processor=proc, probs=refs, **info))
    for i in range(12, 22):
        name, path, roadwork, info = convnext_hf(i, rng, images)
        refs, proc = hf_reference(path, images)
        entries.append(dict(name=name, path=name + "/model.safetensors", roadwork=roadwork,
                            processor=proc, probs=refs, **info))
    for i in range(22, 27):
        name, path, roadwork, refs, info = timm_vit(i, rng, images)
        entries.append(dict(name=name, path=os.path.basename(path), roadwork=roadwork,
                            probs=refs, **info))
    for i in range(27, 29):
        name, path, roadwork, refs, info = timm_convnext(i, rng, images)
        entries.append(dict(name=name, path=os.path.basename(path), roadwork=roadwork,
                            probs=refs, **info))
    spread = [p[e["roadwork"]] for e in entries for p in e["probs"].values()]
    meta = dict(transformers=transformers.__version__, timm=timm.__version__,
                torch=torch.__version__, images=images, models=entries)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1)
    q = np.quantile(spread, [0, 0.1, 0.5, 0.9, 1])
    print(f"{len(entries)} models; roadwork probability quantiles {np.round(q, 3)}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Generate the sv-data fixtures under tests/fixtures/data/ with PIL (and pyarrow).

Run with the reference venv (tools/gen_fixtures.sh creates it; `pip install pyarrow` for
the parquet shards). Everything written is small and committed.

Written:
  data/tree/...             an image-folder tree with awkward files: CMYK JPEG, 16-bit and
                            greyscale PNG, EXIF-rotated JPEG, PNG named .jpg, WebP, empty,
                            truncated, duplicate, not an image, an unlabelled folder
  data/expected.json        per file: label and size as PIL sees it (EXIF applied), or
                            the reason it must be skipped; sha256 of the bytes
  data/pixels.safetensors   PIL's RGB pixels (ImageOps.exif_transpose, convert("RGB"))
                            of the files that decode
  data/natix/*.parquet      shards in the schema of natix-network-org/roadwork (HF Image
                            struct column, label, scene_description, other metadata),
                            snappy and zstd, with bad rows mixed in
  data/natix_expected.json  what a reader must make of every row
"""

import hashlib
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "fixtures" / "data"
TREE = DATA / "tree"


def scene(w: int, h: int, seed: int) -> Image.Image:
    """A smooth colour picture (gradients and a few blocks): JPEG-friendly, not flat."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)),
                    ((x + y) * 127 // max(w + h - 2, 1))], axis=-1).astype(np.uint8)
    for _ in range(3):
        x0, y0 = rng.integers(0, w // 2), rng.integers(0, h // 2)
        img[y0:y0 + h // 4, x0:x0 + w // 4] = rng.integers(0, 256, 3)
    return Image.fromarray(img)


def write(rel: str, data: bytes) -> Path:
    p = TREE / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def main() -> None:
    if sys.argv[1:] == ["augment"]:
        augment_references()
        return
    if TREE.exists():
        shutil.rmtree(TREE)
    files = {}
    a = encode(scene(48, 32, 1), "JPEG", quality=90)
    files["roadwork/a.jpg"] = a
    files["roadwork/sub/b.png"] = encode(scene(40, 30, 2), "PNG")
    files["1/c.webp"] = encode(scene(36, 24, 3), "WEBP", lossless=True)
    files["no_roadwork/cmyk.jpg"] = encode(scene(32, 24, 4).convert("CMYK"), "JPEG", quality=95)
    grey16 = (np.mgrid[0:20, 0:30][1] * 2000).astype(np.uint16)
    files["0/grey16.png"] = encode(Image.fromarray(grey16), "PNG")
    files["0/grey8.png"] = encode(scene(30, 20, 5).convert("L"), "PNG")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    files["no_roadwork/exif_rotated.jpg"] = encode(scene(40, 24, 6), "JPEG", quality=90, exif=exif.tobytes())
    files["no_roadwork/png_named.jpg"] = encode(scene(28, 28, 7), "PNG")
    files["roadwork/empty.jpg"] = b""
    full = encode(scene(64, 48, 8), "JPEG", quality=90)
    files["roadwork/truncated.jpg"] = full[: len(full) // 2]
    files["roadwork/zz_duplicate.jpg"] = a
    files["no_roadwork/notes.txt"] = b"not an image\n"
    files["no_roadwork/big.png"] = encode(scene(200, 100, 9), "PNG")  # over the tests' pixel limit
    files["unlabelled/d.jpg"] = encode(scene(16, 16, 10), "JPEG")
    files["roadwork/.hidden.jpg"] = encode(scene(16, 16, 11), "JPEG")

    expected, pixels = {}, {}
    for rel, data in sorted(files.items()):
        write(rel, data)
        entry = {"sha256": hashlib.sha256(data).hexdigest()}
        top = rel.split("/")[0]
        entry["label"] = {"roadwork": "roadwork", "1": "roadwork", "no_roadwork": "no_roadwork",
                          "0": "no_roadwork"}.get(top)
        try:
            img = Image.open(io.BytesIO(data))
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode == "I;16":
                # PIL's convert("RGB") clips 16-bit values; scale to 8 bits as image-rs does.
                arr = (np.asarray(img, dtype=np.uint32) * 255 + 32767) // 65535
                rgb = np.repeat(arr[..., None], 3, axis=-1).astype(np.uint8)
            else:
                rgb = np.asarray(img.convert("RGB"))
            entry["size"] = [rgb.shape[1], rgb.shape[0]]
            pixels[rel] = torch.from_numpy(rgb.astype(np.float32).copy())
        except Exception as e:  # noqa: BLE001 - every failure is an expected skip here
            entry["pil_error"] = type(e).__name__
        expected[rel] = entry
    (DATA / "expected.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    save_file(pixels, DATA / "pixels.safetensors")
    natix_shards()
    augment_references()
    print("data fixtures written to", DATA)


def augment_references() -> None:
    """Deterministic transforms by PIL and torchvision on one picture, for sv-augment."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    src = scene(61, 43, 200)
    out = DATA / "augment"
    out.mkdir(parents=True, exist_ok=True)
    src.save(out / "source.png")
    refs = {
        "resize_bilinear_24": TF.resize(src, 24, interpolation=InterpolationMode.BILINEAR),
        "resize_bicubic_24": TF.resize(src, 24, interpolation=InterpolationMode.BICUBIC),
        "resize_bicubic_100": TF.resize(src, 100, interpolation=InterpolationMode.BICUBIC),
        "center_crop_20x31": TF.center_crop(src, [20, 31]),  # [height, width]
        "center_crop_64x50": TF.center_crop(src, [64, 50]),  # larger: zero padding
        "hflip": TF.hflip(src),
    }
    for k, sigma in [(5, 1.0), (9, 2.5)]:
        refs[f"gaussian_blur_{k}_{sigma:.1f}"] = TF.gaussian_blur(src, [k, k], [sigma, sigma])
    for q in (75, 30):
        buf = io.BytesIO()
        src.save(buf, "JPEG", quality=q)
        refs[f"jpeg_pil_q{q}"] = Image.open(buf).convert("RGB")
    # albumentations' RandomBrightnessContrast arithmetic (albucore.multiply_add with the
    # brightness scaled by the maximum), on every 8-bit value.
    import albucore
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, axis=2)
    for alpha, beta in [(1.2, -0.1), (0.7, 0.25), (1.0, 0.05)]:
        refs[f"brightness_contrast_{alpha:.2f}_{beta:.2f}"] = albucore.multiply_add(ramp, alpha, beta * 255, inplace=False)
    opencv_references(np.asarray(src), refs)
    torchvision_float_references(src, refs)
    save_file({k: torch.from_numpy(np.asarray(v).astype(np.float32).copy()) for k, v in refs.items()},
              out / "expected.safetensors")


def opencv_references(src: np.ndarray, refs: dict) -> None:
    """albumentations 2.0.8 and OpenCV on the same picture: HSV shifts, motion, Gaussian and
    box blurs, bilinear resize, rain and fog with fixed parameters."""
    import random

    import cv2
    from albumentations.augmentations.blur import functional as fblur
    from albumentations.augmentations.pixel import functional as fpixel

    rng = np.random.default_rng(5)
    # 128 wide: OpenCV's vector HSV→RGB (which truncates) covers whole rows at any SIMD
    # width; its scalar tail (which rounds) takes rows narrower than one vector.
    colours = rng.integers(0, 256, (32, 128, 3), dtype=np.uint8)
    refs["colours"] = colours
    for i, (h, s, v) in enumerate([(12.7, 25.3, -14.2), (-19.5, -29.9, 19.9), (0.0, 0.0, 7.5)]):
        refs[f"hsv_{i}_src"] = fpixel.shift_hsv(src, h, s, v)
        refs[f"hsv_{i}_colours"] = fpixel.shift_hsv(colours, h, s, v)
    for i, (k, angle, direction) in enumerate([(3, 0.0, 0.0), (5, 33.0, 0.4), (7, 200.0, -0.7), (7, 91.0, 1.0)]):
        kernel = fblur.create_motion_kernel(k, angle, direction, False, random.Random(0))
        kernel = kernel.astype(np.float32) / np.sum(kernel)
        refs[f"motion_kernel_{i}"] = kernel
        refs[f"motion_blur_{i}"] = cv2.filter2D(src, -1, kernel)
    for k, sigma in [(7, 7 / 6), (9, 1.5), (7, 0.0), (9, 0.0)]:
        refs[f"cv_gaussian_{k}_{sigma:.3f}"] = cv2.GaussianBlur(src, (k, k), sigma)
    sparse = np.zeros_like(src)
    sparse[::5, ::3] = 200
    refs["box_sparse"] = sparse
    refs["box_7"] = cv2.blur(sparse, (7, 7))
    for factor in (2, 3):
        h, w = src.shape[:2]
        down = cv2.resize(src, (w // factor, h // factor))
        refs[f"down_up_{factor}"] = cv2.resize(down, (w, h))
    h, w = src.shape[:2]
    drop_length = max(1, h // 8)
    drops = rng.integers(low=[0, 0], high=[w, h - drop_length], size=(h // 3, 2), dtype=np.int32)
    refs["rain_drops"] = drops
    refs["rain_slant"] = np.array([-7.3])
    refs["rain"] = fpixel.add_rain(src, -7.3, drop_length, 1, (200, 200, 200), 7, 0.7, drops)
    positions = [(int(x), int(y)) for x, y in rng.integers([10, 8], [w - 10, h - 8], size=(40, 2))]
    radiuses = [int(r) for r in rng.integers(2, 4, size=40)]
    refs["fog_particles"] = np.array([[x, y, r] for (x, y), r in zip(positions, radiuses)])
    refs["fog"] = fpixel.add_fog(src, 0.6, 0.08, positions, radiuses)
    # The validators' DeeperForensics colour distortions (BGR, OpenCV float YCrCb with
    # studio-range scaling, truncation to 8 bits), on a 128-wide image.
    for param in (0.4, 0.3):
        bgr = colours[..., ::-1].astype(np.float32)
        ycbcr = cv2.cvtColor(bgr, cv2.COLOR_BGR2YCR_CB)[:, :, (0, 2, 1)].astype(np.float32)
        ycbcr[..., 0] = (ycbcr[..., 0] * (235 - 16) + 16) / 255.0
        ycbcr[..., 1:] = (ycbcr[..., 1:] * (240 - 16) + 16) / 255.0
        ycbcr[..., 1:] = 0.5 + (ycbcr[..., 1:] - 0.5) * param
        ycbcr[..., 0] = (ycbcr[..., 0] * 255.0 - 16) / (235 - 16)
        ycbcr[..., 1:] = (ycbcr[..., 1:] * 255.0 - 16) / (240 - 16)
        back = cv2.cvtColor(ycbcr[:, :, (0, 2, 1)].astype(np.float32), cv2.COLOR_YCR_CB2BGR)
        refs[f"saturation_{param}"] = back.astype(np.uint8)[..., ::-1]
    for param in (0.85, 0.725):
        refs[f"contrast_{param}"] = (colours.astype(np.float32) * param).astype(np.uint8)


def torchvision_float_references(src: Image.Image, refs: dict) -> None:
    """torchvision on float tensors, as the subnet's validators run it: nearest rotation,
    antialiased resized crop truncated back to 8 bits, and ToTensor + Normalize."""
    import torchvision.transforms.functional as TF
    from torchvision import transforms

    t = transforms.ToTensor()(src)
    for angle in (17.3, -8.0):
        refs[f"rotate_{angle:.1f}"] = TF.rotate(t, angle).mul(255).byte().permute(1, 2, 0)
    # (top, left, height, width) as torchvision orders them.
    refs["resized_crop_f32"] = TF.resized_crop(t, 5, 9, 30, 30, [24, 24], antialias=True).mul(255).byte().permute(1, 2, 0)
    refs["resized_crop_up_f32"] = TF.resized_crop(t, 2, 3, 20, 20, [37, 37], antialias=True).mul(255).byte().permute(1, 2, 0)
    norm = transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])
    refs["normalised_chw"] = norm(t)


def natix_shards() -> None:
    """Parquet shards as the subnet's dataset publishes them: `image` is an HF `Image`
    struct {bytes, path}, `label` 1 = roadwork, `scene_description` non-empty exactly when
    the label is 1; other columns are metadata."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = DATA / "natix"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("image", image_type), ("label", pa.int64()),
                        ("scene_description", pa.string()), ("weather", pa.string()),
                        ("captured_at", pa.int64()), ("speed_kmh", pa.float64())])
    good = [encode(scene(40 + 4 * i, 30, 100 + i), "JPEG", quality=85) for i in range(6)]
    full = encode(scene(48, 32, 120), "JPEG", quality=85)
    rows = [
        # (bytes, path, label, description, weather, time, speed, expected outcome)
        (good[0], "a.jpg", 1, "cones on the right lane", "rain", 1700000000, 31.5, "roadwork"),
        (good[1], "b.jpg", 0, None, "sun", 1700000100, 12.0, "no_roadwork"),
        (good[2], "c.jpg", 0, "", None, None, None, "no_roadwork"),
        (good[3], "d.jpg", 1, None, "fog", 1700000200, 0.0, "inconsistent"),  # label 1, no description
        (good[4], "e.jpg", 0, "an excavator", "sun", 1700000300, 5.0, "inconsistent"),
        (full[: len(full) // 2], "f.jpg", 1, "barriers", "sun", 1700000400, 40.0, "truncated"),
        (b"", "g.jpg", 0, None, "sun", 1700000500, 50.0, "empty"),
        (good[0], "a_again.jpg", 1, "cones on the right lane", "rain", 1700000600, 33.0, "duplicate"),
        (good[5], None, 1, "workers and a sign", "cloud", 1700000700, 8.5, "roadwork"),
    ]
    expected = []
    for shard, (codec, part) in enumerate([("snappy", rows[:5]), ("zstd", rows[5:])]):
        table = pa.table({
            "image": pa.array([{"bytes": r[0], "path": r[1]} for r in part], image_type),
            "label": pa.array([r[2] for r in part], pa.int64()),
            "scene_description": pa.array([r[3] for r in part], pa.string()),
            "weather": pa.array([r[4] for r in part], pa.string()),
            "captured_at": pa.array([r[5] for r in part], pa.int64()),
            "speed_kmh": pa.array([r[6] for r in part], pa.float64()),
        }, schema=schema)
        name = f"train-{shard:05d}-of-00002.parquet"
        # Two rows per row group, so readers must cross row-group boundaries.
        pq.write_table(table, out / name, compression=codec, row_group_size=2)
        for i, r in enumerate(part):
            expected.append({"file": name, "row": i, "outcome": r[7], "path": r[1],
                             "sha256": hashlib.sha256(r[0]).hexdigest(), "description": r[3],
                             "weather": r[4], "captured_at": r[5], "speed_kmh": r[6]})
    (DATA / "natix_expected.json").write_text(json.dumps(expected, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())

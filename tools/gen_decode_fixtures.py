"""Write tests/fixtures/decode/: a corpus of JPEGs (and a few PNGs) with PIL's decoding of
each, for the test that holds sv-image's decoder to PIL pixel for pixel.

Run with the reference venv (Pillow 11.3, whose wheels bundle libjpeg-turbo 3.1):
    tools/.venv/bin/python tools/gen_decode_fixtures.py
Encoders: PIL for most files; libturbojpeg through ctypes (Debian's `libturbojpeg0`)
for 4:4:0, 4:1:1 and YCCK; `cjpeg` (Debian's `libjpeg-turbo-progs`) for restart
markers. The decoder under test is PIL alone: what an encoder wrote does not matter.

For every file, `expected.json` records PIL's `Image.open(f).convert("RGB")` (as a PNG
beside it) and, where the file carries an EXIF orientation, that of
`ImageOps.exif_transpose(Image.open(f)).convert("RGB")`; or the error PIL raised.
"""

import ctypes
import ctypes.util
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import PIL
from PIL import Image, ImageCms, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(ROOT, "tests", "fixtures", "decode")
PHOTOS = os.path.join(ROOT, "tests", "fixtures", "images")

rng = random.Random(16)
entries = []


def photo(name, box):
    return Image.open(os.path.join(PHOTOS, name)).convert("RGB").crop(box)


def synthetic(w, h, seed):
    """Gradients, edges and noise: every DCT frequency and sharp chroma changes."""
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    a = np.stack(
        [
            (x * 255 // max(w - 1, 1)),
            (y * 255 // max(h - 1, 1)),
            ((x // 4 + y // 4) % 2) * 200 + 20,
        ],
        axis=-1,
    ).astype(np.int32)
    a += r.integers(-40, 41, size=a.shape)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def pil_jpeg(img, **kw):
    buf = io.BytesIO()
    img.save(buf, "JPEG", **kw)
    return buf.getvalue()


def expected(data, name):
    """PIL's pixels for `data`, or its refusal."""
    entry = {"file": name}
    try:
        im = Image.open(io.BytesIO(data))
        orientation = im.getexif().get(0x0112)
        rgb = im.convert("RGB")
        entry["size"] = list(rgb.size)
        png = name + ".pil.png"
        rgb.save(os.path.join(OUT, png), optimize=True)
        entry["pil"] = png
        if orientation not in (None, 1):
            t = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
            tpng = name + ".transposed.png"
            t.save(os.path.join(OUT, tpng), optimize=True)
            entry["transposed"] = tpng
            entry["orientation"] = orientation
    except Exception as e:  # PIL refuses: the test expects a refusal too
        entry["refused"] = f"{type(e).__name__}: {e}"
    return entry


def add(name, data, note):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    e = expected(data, name)
    e["note"] = note
    entries.append(e)


# --- libturbojpeg through ctypes (TurboJPEG 2 API: Debian bookworm ships 2.1.5) -------
TJ = None
path = ctypes.util.find_library("turbojpeg")
if path:
    TJ = ctypes.CDLL(path)
    TJ.tjInitCompress.restype = ctypes.c_void_p
    TJ.tjCompress2.argtypes = [
        ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
        ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_ulong),
        ctypes.c_int, ctypes.c_int, ctypes.c_int,
    ]
    TJ.tjFree.argtypes = [ctypes.c_void_p]
    TJ.tjDestroy.argtypes = [ctypes.c_void_p]
TJSAMP = {"444": 0, "422": 1, "420": 2, "gray": 3, "440": 4, "411": 5}
TJPF_RGB, TJPF_CMYK = 0, 11
TJFLAG_PROGRESSIVE = 16384


def tj_jpeg(pixels, w, h, pf, samp, quality, flags=0):
    handle = TJ.tjInitCompress()
    out = ctypes.c_void_p()
    size = ctypes.c_ulong(0)
    rc = TJ.tjCompress2(handle, pixels, w, 0, h, pf, ctypes.byref(out), ctypes.byref(size),
                        TJSAMP[samp], quality, flags)
    assert rc == 0, "tjCompress2 failed"
    data = ctypes.string_at(out, size.value)
    TJ.tjFree(out)
    TJ.tjDestroy(handle)
    return data


def strip_adobe(data):
    """The same JPEG without its Adobe APP14 segment."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        m = data[i + 1]
        n = int.from_bytes(data[i + 2:i + 4], "big")
        if m == 0xEE:
            return data[:i] + data[i + 2 + n:]
        if m == 0xDA:
            break
        i += 2 + n
    raise ValueError("no Adobe segment")


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    chelsea = photo("chelsea.png", (60, 30, 60 + 161, 30 + 117))
    street = photo("chelsea.png", (0, 0, 451, 300)).resize((224, 224), Image.BICUBIC)

    # Baseline and progressive, every subsampling PIL writes, qualities 30–100.
    for prog in (False, True):
        for sub in ("4:4:4", "4:2:2", "4:2:0"):
            for q in (30, 55, 75, 90, 100):
                src = chelsea if q in (30, 75, 100) else synthetic(37, 23, q)
                kind = "prog" if prog else "base"
                add(f"{kind}_{sub.replace(':', '')}_q{q}.jpg",
                    pil_jpeg(src, quality=q, subsampling=sub, progressive=prog),
                    f"PIL {kind} {sub} q{q}")
    # What validators send: 224×224 RGB, quality 75 (PIL's default 4:2:0).
    add("validator_224_q75.jpg", pil_jpeg(street, quality=75), "validator challenge")
    # Odd sizes at every subsampling PIL writes.
    for (w, h) in [(1, 1), (7, 3), (3, 7), (17, 1), (1, 17), (4001, 3), (3, 1201), (33, 31)]:
        for sub in ("4:4:4", "4:2:2", "4:2:0"):
            add(f"size_{w}x{h}_{sub.replace(':', '')}.jpg",
                pil_jpeg(synthetic(w, h, w * 7 + h), quality=rng.choice([40, 75, 95]),
                         subsampling=sub),
                f"odd size {w}x{h} {sub}")
    # 4:4:0, 4:1:1 and YCCK through libturbojpeg.
    if TJ is None:
        sys.exit("libturbojpeg not found: apt-get install libturbojpeg0")
    for samp in ("440", "411"):
        for (w, h) in [(37, 23), (161, 117), (5, 9)]:
            for prog in (0, TJFLAG_PROGRESSIVE):
                src = chelsea.resize((w, h)) if w > 100 else synthetic(w, h, w + h)
                raw = src.tobytes()
                kind = "prog" if prog else "base"
                add(f"tj_{kind}_{samp}_{w}x{h}.jpg",
                    tj_jpeg(raw, w, h, TJPF_RGB, samp, 80, prog),
                    f"libturbojpeg {kind} {samp}")
    cmyk_src = chelsea.convert("CMYK")
    ycck = tj_jpeg(cmyk_src.tobytes(), cmyk_src.width, cmyk_src.height, TJPF_CMYK, "420", 85)
    add("ycck_420.jpg", ycck, "YCCK (Adobe transform 2) from libturbojpeg")
    # CMYK: PIL writes Adobe-inverted CMYK; the same data without the Adobe segment.
    cmyk = pil_jpeg(cmyk_src, quality=85)
    add("cmyk_adobe.jpg", cmyk, "CMYK with Adobe marker (PIL)")
    add("cmyk_no_adobe.jpg", strip_adobe(cmyk), "CMYK without Adobe marker")
    add("cmyk_prog.jpg", pil_jpeg(cmyk_src, quality=60, progressive=True), "progressive CMYK")
    # Greyscale.
    grey = chelsea.convert("L")
    add("grey_q75.jpg", pil_jpeg(grey, quality=75), "greyscale")
    add("grey_prog_q40.jpg", pil_jpeg(grey, quality=40, progressive=True), "greyscale progressive")
    add("grey_1x1.jpg", pil_jpeg(Image.new("L", (1, 1), 77)), "greyscale 1x1")
    # Restart markers (cjpeg -restart), baseline and progressive.
    with tempfile.TemporaryDirectory() as tmp:
        ppm = os.path.join(tmp, "in.ppm")
        chelsea.save(ppm)
        for args, name in [
            (["-restart", "1B"], "restart_1block.jpg"),
            (["-restart", "2", "-sample", "2x2"], "restart_2rows_420.jpg"),
            (["-restart", "1", "-progressive", "-sample", "2x1"], "restart_prog_422.jpg"),
            (["-arithmetic"], "arithmetic.jpg"),
        ]:
            data = subprocess.run(["cjpeg", "-quality", "80", *args, ppm], check=True,
                                  capture_output=True).stdout
            add(name, data, "cjpeg " + " ".join(args))
    # ICC profile (PIL does not apply it on open).
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    add("icc_srgb.jpg", pil_jpeg(chelsea, quality=85, icc_profile=srgb), "ICC profile")
    # EXIF orientations 1–8, on a non-square image so rotations show.
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        add(f"exif_orientation_{o}.jpg",
            pil_jpeg(synthetic(29, 13, o), quality=90, exif=exif.tobytes()),
            f"EXIF orientation {o}")
    # Truncated files and a truncated file with an end-of-image marker appended.
    whole = pil_jpeg(chelsea, quality=80, progressive=False)
    prog = pil_jpeg(chelsea, quality=80, progressive=True)
    for frac in (0.3, 0.7, 0.99):
        add(f"truncated_{int(frac * 100)}.jpg", whole[: int(len(whole) * frac)],
            f"cut at {frac:.0%}")
        add(f"truncated_prog_{int(frac * 100)}.jpg", prog[: int(len(prog) * frac)],
            f"progressive cut at {frac:.0%}")
    add("missing_eoi.jpg", whole[:-2], "everything but the end-of-image marker")
    add("truncated_then_eoi.jpg", whole[: len(whole) // 2] + b"\xff\xd9",
        "cut at 50% with an end-of-image marker appended")
    add("header_only.jpg", whole[:200], "headers only")
    # PNGs (decoded by the image crate, converted as PIL converts).
    for mode in ("RGB", "RGBA", "L", "LA", "P"):
        buf = io.BytesIO()
        src = synthetic(19, 11, 3)
        (src.convert(mode) if mode != "P" else src.quantize(16)).save(buf, "PNG")
        add(f"png_{mode.lower()}.png", buf.getvalue(), f"PNG mode {mode}")

    meta = {
        "pillow": PIL.__version__,
        "libjpeg_turbo": getattr(PIL.features, "version", lambda _: None)("libjpeg_turbo"),
        "files": entries,
    }
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"{len(entries)} files, Pillow {PIL.__version__}")


if __name__ == "__main__":
    import PIL.features  # noqa: F401

    main()

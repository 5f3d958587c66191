#!/usr/bin/env python3
"""albumentations 2.0.8 doing sv-augment's `heavy` preset on the same images, in
`--workers` processes (OpenCV single-threaded in each), the clock running over the
augmentation and normalisation only (images are decoded by each worker first).

    albumentations_augment.py --images DIR [--workers 2] [--rounds 5]
"""

import argparse
import json
import os
import time
from multiprocessing import Pool

import cv2
import numpy as np

IMAGES = []
PIPELINE = None


def heavy():
    import albumentations as A

    return A.Compose([
        A.Resize(224, 224),
        A.HorizontalFlip(p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.3),
        A.GaussNoise(std_range=(3.16 / 255, 7.07 / 255), p=0.2),
        A.OneOf([A.RandomRain(p=1.0), A.RandomFog(p=1.0)], p=0.2),
        A.Normalize(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    ])


def init(paths):
    global IMAGES, PIPELINE
    cv2.setNumThreads(1)
    IMAGES = [cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in paths]
    PIPELINE = heavy()


def work(index):
    out = PIPELINE(image=IMAGES[index])["image"]
    chw = np.ascontiguousarray(out.transpose(2, 0, 1))  # [3, H, W], as sv-augment gives
    return float(chw.reshape(-1)[chw.size // 2])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    paths = sorted(os.path.join(args.images, n) for n in os.listdir(args.images))
    best = float("inf")
    with Pool(args.workers, initializer=init, initargs=(paths,)) as pool:
        pool.map(work, range(len(paths)))  # warm-up: workers started, images decoded
        for _ in range(args.rounds):
            start = time.perf_counter()
            pool.map(work, range(len(paths)), chunksize=4)
            best = min(best, time.perf_counter() - start)
    size = cv2.imread(paths[0]).shape[1::-1]
    print(json.dumps({"impl": "albumentations", "pipeline": "heavy", "images": len(paths),
                      "size": list(size), "threads": args.workers,
                      "images_per_s": len(paths) / best}))


if __name__ == "__main__":
    main()

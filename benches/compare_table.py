"""The Markdown table of a bench run: for each (model, batch), the best round of burn
(`impl` starting with "burn") and of PyTorch, their images/s, ratio and peak memory.

Usage: compare_table.py RESULTS.jsonl (lines printed by model_bench/train_bench and
torch_models.py/torch_train.py).
"""

import collections
import json
import sys

NAMES = {
    "small": "DINOv2-S/14",
    "base": "DINOv2-B/14",
    "large": "DINOv2-L/14",
    "convnextv2-tiny": "ConvNeXt-V2-T",
    "ensemble": "ensemble S/14 + ConvNeXt-V2-T",
}


def main() -> None:
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    best = collections.defaultdict(dict)
    for r in rows:
        key = (r["model"], r["batch"])
        kind = "burn" if r["impl"].startswith("burn") else "torch"
        prev = best[key].get(kind)
        if prev is None or r["images_per_s"] > prev["images_per_s"]:
            best[key][kind] = r
    order = list(NAMES)
    print("| model | batch | burn img/s | PyTorch img/s | burn / PyTorch | burn peak RSS MiB | PyTorch peak RSS MiB |")
    print("|---|---|---|---|---|---|---|")
    for (model, batch), v in sorted(
        best.items(), key=lambda kv: (order.index(kv[0][0]) if kv[0][0] in order else 99, kv[0][0], kv[0][1])
    ):
        if "burn" not in v or "torch" not in v:
            continue
        b, t = v["burn"], v["torch"]
        print(
            f"| {NAMES.get(model, model)} | {batch} | {b['images_per_s']:.2f} | {t['images_per_s']:.2f} | "
            f"{b['images_per_s'] / t['images_per_s']:.2f}× | {b['peak_rss_mib']:.0f} | {t['peak_rss_mib']:.0f} |"
        )


if __name__ == "__main__":
    main()

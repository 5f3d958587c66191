"""PyTorch reference for benches/vit_bench.rs: the same DINOv2-with-registers classifier
(HF transformers, random weights, 518-px position grid resampled to the input size) on the
same input shape, timed the same way (warm-up, then the median of N forward passes).

Prints one JSON line per run, like vit_bench. Run through benches/run_vit.sh.
"""

import argparse
import json
import os
import resource
import statistics
import time

import torch
from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersForImageClassification

SIZES = {
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="small", choices=sorted(SIZES))
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    config = Dinov2WithRegistersConfig(
        **SIZES[args.model], image_size=518, patch_size=14, num_register_tokens=4, num_labels=2
    )
    model = Dinov2WithRegistersForImageClassification(config).eval()
    x = torch.randn(args.batch, 3, args.size, args.size)
    with torch.inference_mode():
        for _ in range(args.warmup):
            model(pixel_values=x).logits.numpy()
        times = []
        for _ in range(args.iters):
            t = time.perf_counter()
            model(pixel_values=x).logits.numpy()
            times.append(time.perf_counter() - t)
    median = statistics.median_low(times)
    print(json.dumps({
        "impl": f"pytorch-{torch.__version__}",
        "model": args.model,
        "batch": args.batch,
        "size": args.size,
        "iters": args.iters,
        "median_s": median,
        "images_per_s": args.batch / median,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "attn": config._attn_implementation,
    }))


if __name__ == "__main__":
    main()

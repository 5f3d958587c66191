"""PyTorch reference for benches/model_bench.rs: the same networks in HF transformers with
random weights (DINOv2 with registers, its 518-px position grid resampled to the input;
ConvNeXt-V2; the DINOv2-S + ConvNeXt-V2-tiny ensemble averaging roadwork probabilities
0.6 / 0.4) on the same input shape, timed the same way (warm-up, then the median of N
passes, softmax included).

Prints one JSON line per run, like model_bench. Run through benches/run_models.sh.
"""

import argparse
import json
import os
import resource
import statistics
import time

import torch
from transformers import (
    ConvNextV2Config,
    ConvNextV2ForImageClassification,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersForImageClassification,
)

SIZES = {
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16),
}
CONVNEXT = {
    "convnextv2-atto": ([2, 2, 6, 2], [40, 80, 160, 320]),
    "convnextv2-nano": ([2, 2, 8, 2], [80, 160, 320, 640]),
    "convnextv2-tiny": ([3, 3, 9, 3], [96, 192, 384, 768]),
    "convnextv2-base": ([3, 3, 27, 3], [128, 256, 512, 1024]),
}


def dinov2(size: str):
    config = Dinov2WithRegistersConfig(
        **SIZES[size], image_size=518, patch_size=14, num_register_tokens=4, num_labels=2
    )
    return Dinov2WithRegistersForImageClassification(config).eval()


def convnext(name: str):
    depths, dims = CONVNEXT[name]
    return ConvNextV2ForImageClassification(ConvNextV2Config(depths=depths, hidden_sizes=dims, num_labels=2)).eval()


def build(name: str):
    """A callable from pixels to roadwork probabilities."""
    if name == "ensemble":
        d, c = dinov2("small"), convnext("convnextv2-tiny")
        return lambda x: 0.6 * d(pixel_values=x).logits.softmax(-1)[:, 1] + 0.4 * c(pixel_values=x).logits.softmax(-1)[:, 1]
    m = dinov2(name) if name in SIZES else convnext(name)
    return lambda x: m(pixel_values=x).logits.softmax(-1)[:, 1]


DTYPES = {"f32": None, "bf16": torch.bfloat16, "f16": torch.float16}


def bench_args(description: str, models: list, batch: int, iters: int, warmup: int):
    """The flags every PyTorch bench takes, as the Rust benches spell them."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--model", default="small", choices=models)
    ap.add_argument("--batch", type=int, default=batch)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--iters", type=int, default=iters)
    ap.add_argument("--warmup", type=int, default=warmup)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--dtype", default="f32", choices=sorted(DTYPES), help="autocast precision")
    return ap.parse_args()


def print_result(args, median: float, **extra) -> None:
    """The run's JSON line, as the Rust benches print theirs."""
    print(json.dumps({
        "impl": f"pytorch-{torch.__version__}",
        "model": args.model,
        "device": args.device,
        "dtype": args.dtype,
        "batch": args.batch,
        "size": args.size,
        "iters": args.iters,
        "median_s": median,
        "images_per_s": args.batch / median,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        **extra,
    }))


def main() -> None:
    args = bench_args(__doc__, sorted(SIZES) + sorted(CONVNEXT) + ["ensemble"], 1, 10, 2)

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    device = torch.device(args.device)
    if args.device == "cpu":
        model = build(args.model)
    else:
        with torch.device(device):
            model = build(args.model)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    dtype = DTYPES[args.dtype]

    def run():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            # Reading the answer back waits for the device.
            return model(x).float().cpu().numpy()

    with torch.inference_mode():
        for _ in range(args.warmup):
            run()
        times = []
        for _ in range(args.iters):
            t = time.perf_counter()
            run()
            times.append(time.perf_counter() - t)
    median = statistics.median_low(times)
    print_result(args, median)

if __name__ == "__main__":
    main()

"""PyTorch reference for benches/train_bench.rs: one fine-tune step of the same network
(HF transformers, random weights, a two-label head) on the same batch shape — forward,
cross-entropy, backward, AdamW (weight decay 0.05) — timed the same way (warm-up, then
the median of N steps).

Prints one JSON line per run, like train_bench. Run through benches/run_train.sh.
"""

import os
import statistics
import time

import torch

from torch_models import CONVNEXT, DTYPES, SIZES, bench_args, convnext, dinov2, print_result


def main() -> None:
    args = bench_args(__doc__, sorted(SIZES) + sorted(CONVNEXT), 8, 3, 1)

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = dinov2(args.model) if args.model in SIZES else convnext(args.model)
    model.to(device).train()
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    y = torch.arange(args.batch, device=device) % 2
    dtype = DTYPES[args.dtype]
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    times = []
    first = 0.0
    for i in range(max(args.warmup, 1) + args.iters):
        t = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(pixel_values=x).logits, y)
        optim.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()
        loss.item()  # waits for the device
        seconds = time.perf_counter() - t
        if i == 0:
            first = seconds
        elif i >= max(args.warmup, 1):
            times.append(seconds)
    median = statistics.median_low(times)
    print_result(args, median, first_step_s=first)

if __name__ == "__main__":
    main()

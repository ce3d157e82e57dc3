"""Time neural-tangents' conv NNGP/NTK ``kernel_fn`` (run in neural-tangents' own venv).

neural-tangents pins numpy < 2, so it cannot share kernelzoo's environment;
``bench_peers.ConvPeers`` runs this file with that venv's python and reads the
JSON it prints. The network is the one kernelzoo's conv ``nngp``/``ntk``
follow (DESIGN: stax, parameterization "ntk"): ``depth`` x [Conv(filter_size,
SAME, W_std, no bias), Relu], GlobalAvgPool, Dense(1, W_std, no bias).

    python nt_conv_timing.py --x X.npy --kernel ntk --depth 2 --repeats 5 [--out K.npy]

``X.npy`` holds ``(n, C, H, W)`` images (transposed to NHWC here). Prints
``{"median_s": ..., "samples_s": [...], "compile_s": ...}``; the first call
(tracing and XLA compilation) is timed apart and not in the samples.

Nothing here runs on import (asv imports every module of the suite).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--x", required=True, help="(n, C, H, W) images, .npy")
    parser.add_argument("--kernel", choices=("nngp", "ntk"), default="ntk")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--filter-size", type=int, default=3)
    parser.add_argument("--weight-std", type=float, default=2**0.5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", help="write the kernel matrix here (.npy)")
    args = parser.parse_args(argv)

    import numpy as np

    x_nchw = np.load(args.x)
    if x_nchw.dtype == np.float64:
        import jax

        jax.config.update("jax_enable_x64", True)
    import jax
    from neural_tangents import stax

    layers = []
    for _ in range(args.depth):
        layers += [
            stax.Conv(1, (args.filter_size, args.filter_size), padding="SAME",
                      W_std=args.weight_std, b_std=None),
            stax.Relu(),
        ]  # fmt: skip
    layers += [stax.GlobalAvgPool(), stax.Dense(1, W_std=args.weight_std, b_std=None)]
    _, _, kernel_fn = stax.serial(*layers)
    kernel_fn = jax.jit(kernel_fn, static_argnames="get")
    x = jax.numpy.asarray(np.transpose(x_nchw, (0, 2, 3, 1)))

    start = time.perf_counter()
    gram = kernel_fn(x, None, args.kernel).block_until_ready()
    compile_s = time.perf_counter() - start
    samples = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        kernel_fn(x, None, args.kernel).block_until_ready()
        samples.append(time.perf_counter() - start)
    if args.out:
        np.save(args.out, np.asarray(gram))
    print(json.dumps({
        "median_s": statistics.median(samples), "samples_s": samples, "compile_s": compile_s,
        "device": str(x.devices()), "dtype": str(x.dtype),
    }))  # fmt: skip


if __name__ == "__main__":
    main()

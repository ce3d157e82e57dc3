"""neural-tangents side of ``nt_compare.py``: run with the *neural-tangents* venv's python.

Not importable from kernelzoo's environment (neural-tangents 0.6.5 needs jax 0.4.23
and numpy 1.26). Reads inputs from .npy files (torch layout, NCHW), builds the
``stax`` net that a kernelzoo ``nngp``/``ntk`` spec describes (see DESIGN, "NNGP /
NTK conventions"), and writes the Gram matrices and timings to an .npz file.

    /work/nt-venv/bin/python benchmarks/_nt_reference.py --spec '{"architecture": "conv"}' \\
        --x x.npy [--y y.npy] --dtype float64 --repeats 3 --out out.npz
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("JAX_PLATFORMS", "cpu")


def build(spec: dict):
    from neural_tangents import stax

    conv = spec.get("architecture", "fc") == "conv"
    depth = int(spec.get("depth", 2))
    w_std = float(spec.get("weight_std", 2**0.5))
    b_std = spec.get("bias_std", 0.0)
    b_std = None if b_std in (None, 0, 0.0) else float(b_std)
    activations = {"relu": stax.Relu(), "erf": stax.Erf(), "abs": stax.Abs()}
    act = activations[spec.get("activation", "relu")]
    f = int(spec.get("filter_size", 3))
    padding = spec.get("padding", "same").upper()
    pooling = spec.get("pooling") or [1] * depth
    layers = []
    for layer in range(depth):
        if conv:
            layers.append(stax.Conv(256, (f, f), padding=padding, W_std=w_std, b_std=b_std))
        else:
            layers.append(stax.Dense(256, W_std=w_std, b_std=b_std))
        layers.append(act)
        if conv and pooling[layer] and pooling[layer] > 1:
            s = int(pooling[layer])
            layers.append(stax.AvgPool((s, s), strides=(s, s), padding="SAME"))
    if conv:
        gap = spec.get("readout", "gap") == "gap"
        layers.append(stax.GlobalAvgPool() if gap else stax.Flatten())
    else:
        layers.insert(0, stax.Flatten())
    if spec.get("readout_dense", True):
        layers.append(stax.Dense(1, W_std=w_std, b_std=b_std))
    return stax.serial(*layers)[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", required=True, help="JSON of kernelzoo nngp/ntk parameters")
    parser.add_argument("--x", required=True)
    parser.add_argument("--y")
    parser.add_argument("--out", required=True)
    parser.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--get", default="nngp,ntk")
    args = parser.parse_args()

    import jax

    jax.config.update("jax_enable_x64", args.dtype == "float64")
    import jax.numpy as jnp
    import numpy as np

    spec = json.loads(args.spec)

    def load(path):
        a = np.load(path).astype(args.dtype)
        if a.ndim == 4:  # NCHW -> NHWC
            a = a.transpose(0, 2, 3, 1)
        return jnp.asarray(a)

    x = load(args.x)
    y = None if args.y is None else load(args.y)
    kernel_fn = jax.jit(build(spec), static_argnames="get")
    results = {}
    for get in args.get.split(","):
        start = time.perf_counter()
        out = np.asarray(kernel_fn(x, y, get=get).block_until_ready())
        first = time.perf_counter() - start
        times, cpu_times = [], []
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            kernel_fn(x, y, get=get).block_until_ready()
            times.append(time.perf_counter() - start)
            cpu_times.append(time.process_time() - start_cpu)  # all threads of the process
        results[get] = out.astype(np.float64)
        results[f"{get}_first_s"] = np.float64(first)
        results[f"{get}_times_s"] = np.asarray(times, dtype=np.float64)
        results[f"{get}_cpu_s"] = np.asarray(cpu_times, dtype=np.float64)
    results["versions"] = np.asarray(
        json.dumps({"jax": jax.__version__, "neural_tangents": _nt_version()})
    )
    np.savez(args.out, **results)


def _nt_version() -> str:
    from importlib.metadata import version

    return version("neural-tangents")


if __name__ == "__main__":
    main()

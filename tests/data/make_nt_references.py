"""Write the neural-tangents reference values in ``tests/data/`` (run with neural-tangents' python).

    /work/nt-venv/bin/python tests/data/make_nt_references.py            # everything
    /work/nt-venv/bin/python tests/data/make_nt_references.py --only predict activations myrtle

neural-tangents 0.6.5 (jax 0.4.23, x64 enabled, CPU), environment recipe in
``benchmarks/nt_compare.py``. The test suite never needs neural-tangents: it
reads the ``.npz`` files written here. Inputs are drawn from fixed seeds, so a
rerun rewrites the same values (to jax's round-off). All values are float64;
inputs use the torch layout (vectors ``(n, d)``, images ``(n, C, H, W)``).

Three groups of files:

- ``nt_predict_<config>.npz``: ``neural_tangents.predict`` on small fc/conv
  problems. Keys ``x_train``, ``y_train``, ``x_test``, ``fx_train_0``,
  ``fx_test_0``, ``spec`` (JSON, kernelzoo ``nngp``/``ntk`` parameters),
  ``stax`` (the layers), the Grams ``nngp_train_train``, ``ntk_train_train``,
  ``nngp_test_train``, ``ntk_test_train``, ``nngp_test_test``, and
  ``cases`` (JSON list); each case names its function (``gd``:
  ``predict.gradient_descent_mse`` on the stored Gram; ``ens``:
  ``predict.gradient_descent_mse_ensemble`` on the stax ``kernel_fn``), its
  arguments, and the keys ``<case>__<output>`` holding neural-tangents'
  outputs (``train``/``test`` for ``gd``; ``<get>__mean``/``<get>__cov`` for
  ``ens``).
- ``nt/<activation config>.npz``: NNGP and NTK Grams for the activations
  gelu, sin, cos, sign and leaky_relu (two slopes), fc and conv, in the
  format of ``shared/oracle`` (``x1``, optional ``x2``, ``nngp``, ``ntk``,
  ``spec``) plus ``stax``.
- ``nt/myrtle<depth>.npz``: Myrtle-5/7/10 NNGP and NTK on 32x32x3 inputs, the
  network of neural-tangents' Myrtle notebook
  (``notebooks/myrtle_kernel_with_neural_tangents.ipynb``), same format.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from neural_tangents import predict, stax  # noqa: E402

HERE = Path(__file__).resolve().parent
SQRT2 = 2**0.5


# ----------------------------------------------------------------------------- networks
def activation_layer(name: str, negative_slope: float | None = None):
    """(stax layer, its description) for a kernelzoo activation name."""
    if name == "relu":
        return stax.Relu(), "Relu()"
    if name == "erf":
        return stax.Erf(), "Erf()"
    if name == "abs":
        return stax.Abs(), "Abs()"
    if name == "gelu":
        return stax.Gelu(), "Gelu(approximate=False)"
    if name == "sin":
        return stax.Sin(), "Sin(a=1.0, b=1.0, c=0.0)"
    if name == "cos":
        # stax.Cos(a, b, c) is Sin(a, b, c + pi/2): a cos(b x + c)
        return stax.Cos(), "Cos(a=1.0, b=1.0, c=0.0)"
    if name == "sign":
        return stax.Sign(), "Sign()"
    if name == "leaky_relu":
        # LeakyRelu(alpha) = ABRelu(alpha, 1): alpha * min(x, 0) + max(x, 0)
        return stax.LeakyRelu(negative_slope), f"LeakyRelu(alpha={negative_slope!r})"
    raise ValueError(name)


def build(spec: dict):
    """(kernel_fn, stax description) for a kernelzoo nngp/ntk spec (DESIGN's conventions)."""
    conv = spec.get("architecture", "fc") == "conv"
    depth = int(spec.get("depth", 2))
    w_std = float(spec.get("weight_std", SQRT2))
    b_std = spec.get("bias_std", 0.0)
    b_std = None if b_std in (None, 0, 0.0) else float(b_std)
    act, act_text = activation_layer(spec.get("activation", "relu"), spec.get("negative_slope"))
    f = int(spec.get("filter_size", 3))
    padding = spec.get("padding", "same").upper()
    layers, text = [], []
    if not conv:
        layers.append(stax.Flatten())
        text.append("Flatten()")
    for _ in range(depth):
        if conv:
            layers.append(stax.Conv(1, (f, f), padding=padding, W_std=w_std, b_std=b_std))
            text.append(f"Conv(1, ({f}, {f}), padding={padding!r}, W_std={w_std!r}, "
                        f"b_std={b_std!r})")
        else:
            layers.append(stax.Dense(1, W_std=w_std, b_std=b_std))
            text.append(f"Dense(1, W_std={w_std!r}, b_std={b_std!r})")
        layers.append(act)
        text.append(act_text)
    if conv:
        gap = spec.get("readout", "gap") == "gap"
        layers.append(stax.GlobalAvgPool() if gap else stax.Flatten())
        text.append("GlobalAvgPool()" if gap else "Flatten()")
    if spec.get("readout_dense", True):
        layers.append(stax.Dense(1, W_std=w_std, b_std=b_std))
        text.append(f"Dense(1, W_std={w_std!r}, b_std={b_std!r})")
    return stax.serial(*layers)[2], "serial(" + ", ".join(text) + ")"


def build_myrtle(depth: int, w_std: float = SQRT2, b_std: float = 0.0):
    """neural-tangents' Myrtle notebook network (widths are irrelevant to the kernel)."""
    layer_factor = {5: [2, 1, 1], 7: [2, 2, 2], 10: [3, 3, 3]}[depth]
    conv_text = f"Conv(1, (3, 3), padding='SAME', W_std={w_std!r}, b_std={b_std!r})"
    pool_text = "AvgPool((2, 2), strides=(2, 2))"  # padding 'VALID', normalize_edges=False

    def conv():
        return stax.Conv(1, (3, 3), W_std=w_std, b_std=b_std, padding="SAME")

    layers, text = [], []
    for group, count in enumerate(layer_factor):
        for _ in range(count):
            layers += [conv(), stax.Relu()]
            text += [conv_text, "Relu()"]
        pools = 3 if group == 2 else 1
        layers += [stax.AvgPool((2, 2), strides=(2, 2))] * pools
        text += [pool_text] * pools
    layers += [stax.Flatten(), stax.Dense(10, w_std, b_std)]
    text += ["Flatten()", f"Dense(10, W_std={w_std!r}, b_std={b_std!r})"]
    return stax.serial(*layers)[2], "serial(" + ", ".join(text) + ")"


def nhwc(x: np.ndarray) -> jnp.ndarray:
    return jnp.asarray(x.transpose(0, 2, 3, 1) if x.ndim == 4 else x)


def grams(kernel_fn, x1: np.ndarray, x2: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    out = kernel_fn(nhwc(x1), None if x2 is None else nhwc(x2), ("nngp", "ntk"))
    return np.asarray(out.nngp, dtype=np.float64), np.asarray(out.ntk, dtype=np.float64)


# ----------------------------------------------------------------------------- predict
PREDICT_CONFIGS = {
    "fc_relu": {
        "spec": {"architecture": "fc", "depth": 2, "activation": "relu",
                 "weight_std": SQRT2, "bias_std": 0.1},
        "shape": (8,), "n_train": 12, "n_test": 5, "k": 3,
    },
    "fc_erf": {
        "spec": {"architecture": "fc", "depth": 3, "activation": "erf",
                 "weight_std": 1.3, "bias_std": 0.2},
        "shape": (6,), "n_train": 10, "n_test": 4, "k": 2,
    },
    "conv_relu_gap": {
        "spec": {"architecture": "conv", "depth": 2, "activation": "relu",
                 "weight_std": SQRT2, "bias_std": 0.1, "readout": "gap", "padding": "same"},
        "shape": (2, 5, 5), "n_train": 8, "n_test": 3, "k": 2,
    },
    "conv_relu_flatten": {
        "spec": {"architecture": "conv", "depth": 2, "activation": "relu",
                 "weight_std": SQRT2, "bias_std": 0.0, "readout": "flatten",
                 "padding": "same"},
        "shape": (1, 5, 5), "n_train": 8, "n_test": 3, "k": 2,
    },
}

# finite times: a scalar, a 1-D array and a 2-D array (leading time axes)
T_SCALAR = 3.0
T_VECTOR = [0.0, 0.5, 5.0, 50.0, 5000.0]
T_MATRIX = [[0.1, 1.0], [10.0, 100.0]]


def predict_cases() -> list[dict]:
    """The argument combinations; outputs are stored under ``<name>__...``."""
    cases = []
    times = {"inf": None, "scalar": T_SCALAR, "vector": T_VECTOR, "matrix": T_MATRIX}
    # gradient_descent_mse on a stored Gram
    for kernel in ("ntk", "nngp"):
        for t_name, t in times.items():
            for fx in ("default", "zero_test", "arrays", "train_none", "test_none"):
                if kernel == "nngp" and fx not in ("arrays",):
                    continue
                cases.append({
                    "name": f"gd_{kernel}_{t_name}_{fx}", "fn": "gd", "kernel": kernel, "t": t,
                    "fx": fx, "learning_rate": 1.0, "diag_reg": 1e-4,
                    "diag_reg_absolute_scale": False,
                })
    # regularisation and learning-rate variants
    for t_name in ("inf", "vector"):
        cases.append({"name": f"gd_ntk_{t_name}_abs", "fn": "gd", "kernel": "ntk",
                      "t": times[t_name], "fx": "arrays", "learning_rate": 0.7,
                      "diag_reg": 1e-3, "diag_reg_absolute_scale": True})
        cases.append({"name": f"gd_ntk_{t_name}_reg6", "fn": "gd", "kernel": "ntk",
                      "t": times[t_name], "fx": "arrays", "learning_rate": 2.0,
                      "diag_reg": 1e-6, "diag_reg_absolute_scale": False})
    # gradient_descent_mse_ensemble
    for t_name, t in times.items():
        for x_test in (True, False):
            for cov in (False, True):
                where, what = "test" if x_test else "train", "cov" if cov else "mean"
                cases.append({
                    "name": f"ens_{t_name}_{where}_{what}",
                    "fn": "ens", "t": t, "x_test": x_test, "compute_cov": cov,
                    "learning_rate": 1.0, "diag_reg": 1e-4, "diag_reg_absolute_scale": False,
                })
    for t_name in ("inf", "vector"):
        cases.append({"name": f"ens_{t_name}_test_cov_abs", "fn": "ens", "t": times[t_name],
                      "x_test": True, "compute_cov": True, "learning_rate": 0.5,
                      "diag_reg": 1e-3, "diag_reg_absolute_scale": True})
        cases.append({"name": f"ens_{t_name}_test_cov_reg6", "fn": "ens", "t": times[t_name],
                      "x_test": True, "compute_cov": True, "learning_rate": 1.0,
                      "diag_reg": 1e-6, "diag_reg_absolute_scale": False})
    return cases


def run_gd(case: dict, data: dict) -> dict:
    k_dd = jnp.asarray(data[f"{case['kernel']}_train_train"])
    k_td = jnp.asarray(data[f"{case['kernel']}_test_train"])
    fn = predict.gradient_descent_mse(
        k_dd, jnp.asarray(data["y_train"]), learning_rate=case["learning_rate"],
        diag_reg=case["diag_reg"], diag_reg_absolute_scale=case["diag_reg_absolute_scale"])
    t = None if case["t"] is None else np.asarray(case["t"], dtype=np.float64)
    if t is not None and t.ndim == 0:
        t = float(t)
    fx_train_0 = jnp.asarray(data["fx_train_0"])
    fx_test_0 = jnp.asarray(data["fx_test_0"])
    fx = case["fx"]
    if fx == "default":  # predict_fn(t): train only, fx_train_0 = 0
        return {"train": fn(t)}
    if fx == "zero_test":  # default fx_train_0, fx_test_0 = 0.0
        train, test = fn(t, fx_test_0=0.0, k_test_train=k_td)
        return {"train": train, "test": test}
    if fx == "arrays":
        train, test = fn(t, fx_train_0, fx_test_0, k_td)
        return {"train": train, "test": test}
    if fx == "train_none":
        return {"test": fn(t, None, fx_test_0, k_td)}
    if fx == "test_none":
        return {"train": fn(t, fx_train_0, None, None)}
    raise ValueError(fx)


def run_ens(case: dict, data: dict, kernel_fn) -> dict:
    fn = predict.gradient_descent_mse_ensemble(
        kernel_fn, nhwc(data["x_train"]), jnp.asarray(data["y_train"]),
        learning_rate=case["learning_rate"], diag_reg=case["diag_reg"],
        diag_reg_absolute_scale=case["diag_reg_absolute_scale"])
    t = None if case["t"] is None else np.asarray(case["t"], dtype=np.float64)
    if t is not None and t.ndim == 0:
        t = float(t)
    x_test = nhwc(data["x_test"]) if case["x_test"] else None
    out = fn(t, x_test, None, case["compute_cov"])  # get=None: both
    result = {}
    for get in ("nngp", "ntk"):
        value = getattr(out, get)
        if case["compute_cov"]:
            result[f"{get}__mean"], result[f"{get}__cov"] = value.mean, value.covariance
        else:
            result[f"{get}__mean"] = value
    return result


def make_predict(config: str) -> None:
    cfg = PREDICT_CONFIGS[config]
    rng = np.random.RandomState(sum(map(ord, config)))
    n, m, k = cfg["n_train"], cfg["n_test"], cfg["k"]
    data = {
        "x_train": rng.randn(n, *cfg["shape"]),
        "x_test": rng.randn(m, *cfg["shape"]),
        "y_train": rng.randn(n, k),
        "fx_train_0": 0.3 * rng.randn(n, k),
        "fx_test_0": 0.3 * rng.randn(m, k),
    }
    kernel_fn, text = build(cfg["spec"])
    data["nngp_train_train"], data["ntk_train_train"] = grams(kernel_fn, data["x_train"], None)
    data["nngp_test_train"], data["ntk_test_train"] = grams(
        kernel_fn, data["x_test"], data["x_train"])
    data["nngp_test_test"], _ = grams(kernel_fn, data["x_test"], None)
    cases = predict_cases()
    out = dict(data)
    for case in cases:
        result = run_gd(case, data) if case["fn"] == "gd" else run_ens(case, data, kernel_fn)
        for key, value in result.items():
            out[f"{case['name']}__{key}"] = np.asarray(value, dtype=np.float64)
    out["spec"] = np.asarray(json.dumps(cfg["spec"]))
    out["stax"] = np.asarray(text)
    out["cases"] = np.asarray(json.dumps(cases))
    out["versions"] = np.asarray(versions())
    np.savez_compressed(HERE / f"nt_predict_{config}.npz", **out)


# ----------------------------------------------------------------------------- activations
ACTIVATIONS = [
    ("gelu", None), ("sin", None), ("cos", None), ("sign", None),
    ("leaky_relu", 0.1), ("leaky_relu", 0.3),
]


def activation_configs() -> dict[str, dict]:
    configs = {}
    for act, slope in ACTIVATIONS:
        tag = act if slope is None else f"{act}{slope:g}".replace(".", "")
        base = {"activation": act}
        if slope is not None:
            base["negative_slope"] = slope
        configs[f"fc_{tag}_d2"] = {
            "spec": {"architecture": "fc", "depth": 2, **base, "weight_std": SQRT2,
                     "bias_std": 0.0},
            "x1": (8, 10), "x2": None}
        configs[f"fc_{tag}_d2_bias_cross"] = {
            "spec": {"architecture": "fc", "depth": 2, **base, "weight_std": 1.2,
                     "bias_std": 0.3},
            "x1": (7, 10), "x2": (4, 10)}
        configs[f"conv_{tag}_d2_gap"] = {
            "spec": {"architecture": "conv", "depth": 2, **base, "weight_std": SQRT2,
                     "bias_std": 0.1, "readout": "gap", "padding": "same"},
            "x1": (5, 2, 6, 6), "x2": None}
        configs[f"conv_{tag}_d2_flatten"] = {
            "spec": {"architecture": "conv", "depth": 2, **base, "weight_std": SQRT2,
                     "bias_std": 0.0, "readout": "flatten", "padding": "same"},
            "x1": (5, 1, 8, 8), "x2": None}
    return configs


def make_gram_file(name: str, spec: dict, x1: np.ndarray, x2: np.ndarray | None,
                   kernel_fn, text: str) -> float:
    start = time.perf_counter()
    nngp, ntk = grams(kernel_fn, x1, x2)
    seconds = time.perf_counter() - start
    out = {"x1": x1, "nngp": nngp, "ntk": ntk, "spec": np.asarray(json.dumps(spec)),
           "stax": np.asarray(text), "versions": np.asarray(versions())}
    if x2 is not None:
        out["x2"] = x2
    (HERE / "nt").mkdir(exist_ok=True)
    np.savez_compressed(HERE / "nt" / f"{name}.npz", **out)
    return seconds


def make_activations() -> None:
    for name, cfg in activation_configs().items():
        rng = np.random.RandomState(sum(map(ord, name)))
        x1 = rng.randn(*cfg["x1"])
        x2 = None if cfg["x2"] is None else rng.randn(*cfg["x2"])
        kernel_fn, text = build(cfg["spec"])
        seconds = make_gram_file(name, cfg["spec"], x1, x2, kernel_fn, text)
        print(f"  nt/{name}.npz: {seconds:.1f} s", flush=True)


def make_myrtle(depths=(5, 7, 10), n: int = 3) -> None:
    for depth in depths:
        rng = np.random.RandomState(depth)
        x1 = rng.randn(n, 3, 32, 32)
        kernel_fn, text = build_myrtle(depth)
        spec = {"architecture": "myrtle", "depth": depth, "weight_std": SQRT2, "bias_std": 0.0}
        seconds = make_gram_file(f"myrtle{depth}", spec, x1, None, kernel_fn, text)
        print(f"  nt/myrtle{depth}.npz: {seconds:.1f} s", flush=True)


def versions() -> str:
    from importlib.metadata import version

    return json.dumps({"jax": jax.__version__, "neural_tangents": version("neural-tangents")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", default=["predict", "activations", "myrtle"],
                        choices=["predict", "activations", "myrtle"])
    parser.add_argument("--myrtle-depths", nargs="*", type=int, default=[5, 7, 10])
    args = parser.parse_args()
    if "predict" in args.only:
        for config in PREDICT_CONFIGS:
            start = time.perf_counter()
            make_predict(config)
            print(f"  nt_predict_{config}.npz: {time.perf_counter() - start:.1f} s", flush=True)
    if "activations" in args.only:
        make_activations()
    if "myrtle" in args.only:
        make_myrtle(tuple(args.myrtle_depths))


if __name__ == "__main__":
    main()

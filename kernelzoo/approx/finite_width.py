"""Finite-width approximations of the NNGP and NTK: random networks of the same architecture.

Both draw a torch network with the architecture of the kernel (``depth``
hidden Dense/Conv layers, the activation, optional average pooling, the
readout), parameterization "ntk" (weights and biases standard normal, scaled
by ``weight_std / sqrt(fan_in)`` and ``bias_std`` in the forward pass), every
hidden layer ``budget`` units/channels wide. Weights are drawn on the CPU in
float64 from ``seed`` and cast on use.

- ``monte-carlo`` (NNGP): features = ``weight_std / sqrt(fan_in)`` times the
  readout of the last hidden layer (the mean over positions for ``gap``; the
  flattened map for ``flatten``, fan_in = width * positions), plus a constant
  column ``bias_std``: the output of the final ``Dense(1)`` is ``w . features``
  with ``w`` standard normal, so ``E[features features^T]`` is the NNGP. Without
  ``readout_dense`` the features are the readout over ``sqrt(fan_in)`` (the
  covariance of one readout channel). ``n_samples`` independent networks are
  concatenated, scaled by ``1/sqrt(n_samples)``.
- ``empirical`` (NTK): ``J(x) J(y)^T`` with J the Jacobian of the scalar output
  with respect to every parameter (``torch.func.vmap(jacrev)``), computed tile
  by tile under the memory budget; :meth:`EmpiricalNTK.features` returns J
  when it fits in the budget.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from kernelzoo._validation import check_int, format_bytes, get_memory_budget
from kernelzoo.approx.base import Approximation, check_budget, generator
from kernelzoo.kernels.functional.architecture import Net, conv_shapes
from kernelzoo.kernels.functional.conv import pad_axis

__all__ = ["EmpiricalNTK", "MonteCarloNNGP"]


# ----------------------------------------------------------------------- the finite network
def _param_shapes(
    net: Net, input_shape: tuple[int, ...], width: int, dense: bool
) -> dict[str, tuple[int, ...]]:
    """The parameters of one network, in draw order: ``w0, b0, ...`` (and with ``dense``
    the final ``Dense(1)``'s ``w_out``, ``b_out``) -> their shapes."""
    shapes: dict[str, tuple[int, ...]] = {}
    fan = input_shape[0]
    for layer in range(net.depth):
        if net.conv:
            shapes[f"w{layer}"] = (width, fan, net.filter_size, net.filter_size)
        else:
            shapes[f"w{layer}"] = (width, fan)
        if net.bias_var > 0:
            shapes[f"b{layer}"] = (width,)
        fan = width
    if dense:
        shapes["w_out"] = (_readout_size(net, input_shape, width),)
        if net.bias_var > 0:
            shapes["b_out"] = ()
    return shapes


def _draw_params(
    net: Net, input_shape: tuple[int, ...], width: int, gen: torch.Generator, dense: bool
) -> dict[str, torch.Tensor]:
    """Standard normal parameters (float64, CPU) of one network, named ``w0, b0, ...``;
    with ``dense`` also the final ``Dense(1)`` (``w_out``, ``b_out``)."""
    return {name: torch.randn(shape, generator=gen, dtype=torch.float64)
            for name, shape in _param_shapes(net, input_shape, width, dense).items()}


def _readout_size(net: Net, input_shape: tuple[int, ...], width: int) -> int:
    if net.conv and net.readout == "flatten":
        h, w = conv_shapes(input_shape[1], input_shape[2], net)[-1]
        return width * h * w
    return width


def _activation(h: torch.Tensor, name: str, negative_slope: float = 0.01) -> torch.Tensor:
    """The activation of a finite net (its autograd derivative gives the empirical NTK:
    ``sign``'s is 0, as its kernel's derivative dual)."""
    if name == "relu":
        return torch.relu(h)
    if name == "abs":
        return h.abs()
    if name == "leaky_relu":
        return F.leaky_relu(h, negative_slope)
    if name == "gelu":
        return F.gelu(h)  # exact: u Phi(u)
    if name == "sin":
        return torch.sin(h)
    if name == "cos":
        return torch.cos(h)
    if name == "sign":
        return torch.sign(h)
    if name == "erf":
        return torch.erf(h)
    raise ValueError(f"unknown activation {name!r}")


def _pool(h: torch.Tensor, stride: int) -> torch.Tensor:
    """AvgPool window = stride = s, SAME zero padding, divided by s^2 (as the kernel)."""
    if stride == 1:
        return h
    for axis in (2, 3):
        n = h.shape[axis]
        total = -(-n // stride) * stride - n
        h = pad_axis(h, axis, total // 2, total - total // 2, circular=False)
    return F.avg_pool2d(h, stride, stride)


def _hidden(params: dict[str, torch.Tensor], x: torch.Tensor, net: Net) -> torch.Tensor:
    """The readout of the last hidden layer: ``(n, width)`` (fc, gap) or
    ``(n, width * positions)`` (flatten)."""
    w_std, b_std = math.sqrt(net.weight_var), math.sqrt(net.bias_var)
    h = x
    for layer in range(net.depth):
        w = params[f"w{layer}"]
        if net.conv:
            fan_in = w.shape[1] * w.shape[2] * w.shape[3]
            if net.padding != "valid":
                low = (net.filter_size - 1) // 2
                high = net.filter_size - 1 - low
                circular = net.padding == "circular"
                h = pad_axis(pad_axis(h, 2, low, high, circular), 3, low, high, circular)
            pre = F.conv2d(h, w) * (w_std / math.sqrt(fan_in))
            if f"b{layer}" in params:
                pre = pre + b_std * params[f"b{layer}"][:, None, None]
        else:
            pre = (h @ w.T) * (w_std / math.sqrt(w.shape[1]))
            if f"b{layer}" in params:
                pre = pre + b_std * params[f"b{layer}"]
        h = _activation(pre, net.activation, net.negative_slope)
        if net.conv:
            h = _pool(h, net.pooling[layer])
    if not net.conv:
        return h
    if net.readout == "gap":
        return h.mean((2, 3))
    return h.reshape(h.shape[0], -1)


def _output(params: dict[str, torch.Tensor], x: torch.Tensor, net: Net) -> torch.Tensor:
    """The scalar outputs ``(n,)`` of the network with its final ``Dense(1)``."""
    r = _hidden(params, x, net)
    w = params["w_out"]
    out = (r @ w) * (math.sqrt(net.weight_var) / math.sqrt(w.shape[0]))
    if "b_out" in params:
        out = out + math.sqrt(net.bias_var) * params["b_out"]
    return out


def _check_width(budget: Any) -> int:
    return check_budget(budget, "budget (network width)")


# ----------------------------------------------------------------------- monte carlo nngp
class MonteCarloNNGP(Approximation):
    """NNGP features of random finite networks, ``budget`` = width of every hidden layer.

    Parameters
    ----------
    kernel : Kernel
        The exact kernel to approximate.
    budget : int
        Width of every hidden layer.
    seed : int, default 0
        Seed of every random draw (CPU float64 generator), in ``[0, 2**32 - 1]``.

    Other Parameters
    ----------------
    n_samples : int >= 1, default 1
        Independent networks, concatenated with ``1/sqrt(n_samples)`` scaling.

    Shape
    -----
    ``features(X)``: ``(n, ...)`` -> ``(n, n_samples * (F + [bias_std > 0]))``
    with F = width (fc, gap) or width * final positions (flatten).
    """

    method = "monte-carlo"
    options: ClassVar[dict[str, Any]] = {"n_samples": 1}

    def _check_budget(self, budget: Any) -> int:
        return _check_width(budget)

    def _check_options(self) -> None:
        self.opts["n_samples"] = check_int(self.opts["n_samples"], "n_samples", minimum=1)

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        net = self.kernel.net
        gen = generator(self.seed)
        shape = tuple(x.shape[1:])
        self.params_ = [
            _draw_params(net, shape, self.budget, gen, dense=False)
            for _ in range(self.opts["n_samples"])
        ]
        bias_column = net.readout_dense and net.bias_var > 0
        per_sample = _readout_size(net, shape, self.budget) + int(bias_column)
        self.n_features_ = per_sample * self.opts["n_samples"]

    def _state_shapes(self, state: dict[str, Any]) -> dict[str, Any]:
        net, shape = self.kernel.net, tuple(state["input_shape_"])
        n_samples = self.opts["n_samples"]
        if not isinstance(state.get("params_"), list) or len(state["params_"]) != n_samples:
            raise ValueError(f"state params_ must be a list of {n_samples} networks")
        one = _param_shapes(net, shape, self.budget, dense=False)
        bias_column = net.readout_dense and net.bias_var > 0
        per_sample = _readout_size(net, shape, self.budget) + int(bias_column)
        return {**{f"params_[{i}][{name}]": s for i in range(n_samples)
                   for name, s in one.items()},
                "n_features_": per_sample * n_samples}

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        net = self.kernel.net
        fitted = self.fitted_on(
            x, **{f"{i}/{k}": v for i, params in enumerate(self.params_) for k, v in params.items()}
        )
        scale = math.sqrt(net.weight_var) if net.readout_dense else 1.0
        blocks = []
        for index in range(len(self.params_)):
            prefix = f"{index}/"
            local = {k[len(prefix):]: v for k, v in fitted.items() if k.startswith(prefix)}
            r = _hidden(local, x, net)
            blocks.append(r * (scale / math.sqrt(r.shape[1])))
            if net.readout_dense and net.bias_var > 0:
                blocks.append(torch.full((x.shape[0], 1), math.sqrt(net.bias_var),
                                         dtype=x.dtype, device=x.device))
        return torch.cat(blocks, 1) * (1.0 / math.sqrt(len(self.params_)))


# ----------------------------------------------------------------------- empirical ntk
class EmpiricalNTK(Approximation):
    """The empirical NTK ``J(x) J(y)^T`` of a random finite network, ``budget`` = width.

    J is the Jacobian of the scalar output (the final ``Dense(1)``, which is
    required) with respect to every parameter, by ``torch.func``; the Gram is
    evaluated tile by tile (:meth:`Approximation.gram`) so that the Jacobians
    held at once stay under the memory budget. :meth:`features` returns J
    itself when ``n x n_params`` numbers fit in the budget and raises a
    ``ValueError`` saying how much it needs otherwise.

    Parameters
    ----------
    kernel : Kernel
        The exact kernel to approximate.
    budget : int
        Width of every hidden layer.
    seed : int, default 0
        Seed of every random draw (CPU float64 generator), in ``[0, 2**32 - 1]``.

    Shape
    -----
    ``gram(X, Y)``: ``(n, ...)``, ``(m, ...)`` -> ``(n, m)``;
    ``features(X)`` -> ``(n, n_params)``.
    """

    method = "empirical"
    options: ClassVar[dict[str, Any]] = {}
    gram_only = True  # J has one column per network parameter

    def _check_budget(self, budget: Any) -> int:
        return _check_width(budget)

    def _check_options(self) -> None:
        if not self.kernel.net.readout_dense:
            raise ValueError(
                "the empirical NTK needs the scalar output of the final Dense(1) layer; "
                "use readout_dense=True"
            )

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        net = self.kernel.net
        self.params_ = _draw_params(net, tuple(x.shape[1:]), self.budget,
                                    generator(self.seed), dense=True)
        self.n_features_ = sum(p.numel() for p in self.params_.values())

    def _state_shapes(self, state: dict[str, Any]) -> dict[str, Any]:
        shapes = _param_shapes(self.kernel.net, tuple(state["input_shape_"]), self.budget,
                               dense=True)
        if not isinstance(state.get("params_"), dict) or set(state["params_"]) != set(shapes):
            raise ValueError(f"state params_ must hold the network parameters "
                             f"{', '.join(shapes)}")
        return {**{f"params_[{name}]": s for name, s in shapes.items()},
                "n_features_": sum(math.prod(s) for s in shapes.values())}

    # the Jacobian of a block of inputs: (len(x), n_params)
    def _jacobian(self, x: torch.Tensor) -> torch.Tensor:
        from torch.func import jacrev, vmap

        net = self.kernel.net
        params = self.fitted_on(x, **self.params_)

        def single(p, xi):
            return _output(p, xi[None], net)[0]

        jac = vmap(jacrev(single), in_dims=(None, 0))(params, x)
        return torch.cat([jac[name].reshape(x.shape[0], -1) for name in params], 1)

    def _rows_per_block(self, x: torch.Tensor, budget: int) -> int:
        """Jacobian rows per block: a row and its vmap intermediates are about two
        parameter vectors, and a row block and a column block share the budget."""
        per_row = 2 * self.n_features_ * x.element_size()
        return max(1, budget // (2 * per_row))

    def _gram_block(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        jx = self._jacobian(x)
        jy = jx if y is None else self._jacobian(y)
        return jx @ jy.T

    def _diag(self, x: torch.Tensor) -> torch.Tensor:
        step = max(1, self._rows_per_block(x, get_memory_budget()))
        return torch.cat([self._jacobian(x[s : s + step]).square().sum(1)
                          for s in range(0, x.shape[0], step)])

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        budget = get_memory_budget()
        need = x.shape[0] * self.n_features_ * x.element_size() * 2
        if need > budget:
            raise ValueError(
                f"the empirical NTK features of {x.shape[0]} inputs are a "
                f"{x.shape[0]} x {self.n_features_} Jacobian: about {format_bytes(need)} with "
                f"its intermediates, more than the memory budget of {format_bytes(budget)}; "
                f"use gram() (tiled), fewer inputs at a time, or kz.set_memory_budget(...)"
            )
        return self._jacobian(x)

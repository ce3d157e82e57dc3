"""The resolved architecture of an infinite-width net (NNGP/NTK) and its spatial shapes."""

from __future__ import annotations

import dataclasses

__all__ = [
    "ACTIVATIONS",
    "HOMOGENEOUS_ACTIVATIONS",
    "MYRTLE_GROUPS",
    "PADDINGS",
    "READOUTS",
    "Net",
    "conv_shapes",
    "myrtle_layers",
]

ACTIVATIONS = ("relu", "erf", "abs", "gelu", "sin", "cos", "sign", "leaky_relu")
#: positively homogeneous of degree 1 (``f(a u) = a f(u)``, a > 0): a net of these without
#: bias has ``k(a x, b y) = a b k(x, y)`` (``sign`` is of degree 0)
HOMOGENEOUS_ACTIVATIONS = ("relu", "abs", "leaky_relu")
PADDINGS = ("same", "valid", "circular")
READOUTS = ("gap", "flatten")


@dataclasses.dataclass(frozen=True)
class Net:
    """The resolved architecture (hashable: it keys the compiled functions)."""

    conv: bool
    depth: int
    activation: str
    weight_var: float  # weight_std^2
    bias_var: float  # bias_std^2 (0: no bias)
    filter_size: int
    padding: str
    readout: str
    readout_dense: bool
    pooling: tuple[int, ...]  # one stride per hidden layer, 1 = no pooling
    ntk: bool  # also carry the tangent kernel
    negative_slope: float = 0.01  # leaky_relu only

    @property
    def conv_scale(self) -> float:
        """c = weight_std^2 / filter_size^2 (fan-in normalisation of a conv layer)."""
        return self.weight_var / self.filter_size**2

    @property
    def homogeneous(self) -> bool:
        """Whether ``k(a x, b y) = a b k(x, y)`` for ``a, b > 0``: a positively homogeneous
        activation of degree 1 and no bias (then inputs are evaluated at unit scale,
        :mod:`~kernelzoo.kernels.functional.extremes`)."""
        return self.activation in HOMOGENEOUS_ACTIVATIONS and self.bias_var == 0

    @property
    def pooled(self) -> bool:
        return any(s > 1 for s in self.pooling)

    @property
    def full_spatial(self) -> bool:
        """Whether conv needs the covariance over all position pairs."""
        return self.readout == "gap" or self.pooled


def conv_shapes(height: int, width: int, net: Net) -> list[tuple[int, int]]:
    """The spatial shape after each hidden layer's conv (before its pooling),
    followed by the final shape (after the last pooling).

    Raises a ``ValueError`` when ``padding='valid'`` (or pooling) leaves no pixel.
    """
    shapes = []
    h, w = height, width
    for layer in range(net.depth):
        if net.padding == "valid":
            h, w = h - net.filter_size + 1, w - net.filter_size + 1
            if h < 1 or w < 1:
                raise ValueError(
                    f"padding='valid' with filter_size={net.filter_size} leaves no pixel at "
                    f"hidden layer {layer + 1} of {net.depth} for {height}x{width} images; use "
                    f"padding='same', a smaller filter_size or depth, or larger images"
                )
        shapes.append((h, w))
        s = net.pooling[layer]
        h, w = -(-h // s), -(-w // s)
    shapes.append((h, w))
    return shapes


#: Myrtle depth -> conv layers in each of its three groups (Shankar et al. 2020)
MYRTLE_GROUPS = {5: (2, 1, 1), 7: (2, 2, 2), 10: (3, 3, 3)}


def myrtle_layers(depth: int) -> tuple[int, tuple[int, ...]]:
    """``(hidden conv layers, pooling strides)`` of the Myrtle network of ``depth``.

    Three groups of 3x3 SAME conv + activation; 2x2 average pooling after the
    first and the second group, and three times after the third (one 8x8
    pooling: equal when the size is divisible by 8). ``depth`` counts the
    conv layers and the final Dense.

    Parameters
    ----------
    depth : {5, 7, 10}
        The Myrtle depth.

    Returns
    -------
    tuple
        ``(n_conv, pooling)`` with one stride per conv layer.
    """
    pooling: list[int] = []
    for group, count in enumerate(MYRTLE_GROUPS[depth]):
        pooling += [1] * (count - 1) + [8 if group == 2 else 2]
    return len(pooling), tuple(pooling)

"""Fuzz suite (issue 14): every family, exact and every approximation, at any input scale.

Everything is enumerated, nothing is listed by hand: the families from the
registry (``kz.available()``), their approximations from the classes
(``Kernel.approximations``), the values of every parameter whose check
declares its choices (``check.choices``: activations, architectures, kappas,
degrees...), and the variants approximations are fitted on from
``Kernel.compare_variants``. A new family, approximation or activation is
fuzzed with no edit here.

Each example draws a method (exact or an approximation), a dtype, a number of
samples (1 to 6, tiny images for conv kernels), rows that are zero, duplicate,
near-parallel or near-antipodal to earlier ones, and a power-of-two scale
anywhere in the dtype's range (each row may carry its own). The result must
be a finite, exactly symmetric Gram whose diagonal is ``diag``, PSD to
``-1e-6 trace`` for exact kernels, consistent with a cross Gram of its rows;
or the call raises the documented error (``OverflowError``, docs/INPUTS.md).

``test_homogeneous_kernels_scale`` adds correctness at extreme scales for the
positively homogeneous kernels (``Kernel.homogeneity``): ``k(a x, b y) = (a
b)^p k(x, y)``, so a scaled input must give the scaled Gram wherever it fits
the dtype (an OverflowError only where it does not).

Hypothesis runs under the derandomised "ci" profile (tests/conftest.py), so a
run tries the same examples every time; ``HYPOTHESIS_PROFILE=dev`` draws new ones.
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings

import pytest
import torch
from hypothesis import event, given, reject, settings
from hypothesis import strategies as st

import kernelzoo as kz
from kernelzoo import registry

#: examples per family and run (at least 200; more under a profile that asks for more)
EXAMPLES = max(200, settings.default.max_examples)
VECTOR_DIM = 5
IMAGE_SHAPE = (2, 6, 6)
FIT_ROWS = 8
DTYPES = (torch.float32, torch.float64)

#: cheap settings per approximation method (anything else: budget 4, no options)
_CHEAP = {
    "layerwise": dict(budget=3, n_patches=200, kmeans_iters=2),
    "supervised": dict(budget=3, n_patches=200, kmeans_iters=2, epochs=1, batch_size=8,
                       progress=False),
    "nystrom": dict(budget=4),
}


#: (family, parameter, value) choices the fuzz suite cannot afford, each tested elsewhere:
#: Myrtle takes only images with sides divisible by 32 (an image pair carries ~1M position
#: pairs, about a second), covered by tests/test_nt_activations.py (neural-tangents'
#: values, the shared mixin with zero, identical and scaled inputs)
NOT_FUZZED = {("nngp", "architecture", "myrtle"), ("ntk", "architecture", "myrtle")}


def _choices(family: str) -> dict[str, tuple]:
    """Every parameter of the family whose check declares its values (less NOT_FUZZED)."""
    out = {}
    for p in registry.kernel_class(family).params:
        choices = getattr(p.check, "choices", None)
        if choices:
            out[p.name] = tuple(c for c in choices if (family, p.name, c) not in NOT_FUZZED)
    return out


@functools.cache
def variants(family: str) -> tuple[tuple[tuple[str, object], ...], ...]:
    """All constructible combinations of the family's choice parameters."""
    choices = _choices(family)
    names = sorted(choices)
    found = []
    for values in itertools.product(*(choices[n] for n in names)):
        params = dict(zip(names, values))
        try:
            kz.kernel(family, **params)
        except (TypeError, ValueError):
            continue
        found.append(tuple(sorted(params.items())))
    return tuple(found) or ((),)


def _shape(kernel) -> tuple[int, ...]:
    return IMAGE_SHAPE if kernel.is_conv else (VECTOR_DIM,)


@functools.cache
def fitted(family: str, variant: tuple, method: str, dtype: torch.dtype):
    """One fitted approximation per (family, variant, method, dtype), on unit-scale inputs."""
    k = kz.kernel(family, **dict(variant))
    g = torch.Generator().manual_seed(7)
    x = torch.randn(FIT_ROWS, *_shape(k), generator=g, dtype=torch.float64).to(dtype)
    a = k.approximate(method, seed=3, **_CHEAP.get(method, {"budget": 4}))
    y = torch.arange(FIT_ROWS) % 2 if a.requires_labels else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return a.fit(x, y)


def _methods(family: str) -> list[str]:
    return ["exact", *registry.kernel_class(family).approximations]


def _approx_variants(family: str) -> list[tuple]:
    cls = registry.kernel_class(family)
    return [tuple(sorted(v.items())) for v in cls.compare_variants]


# ---------------------------------------------------------------------- inputs
_KINDS = ("fresh", "zero", "duplicate", "parallel", "antipodal", "scaled")


@st.composite
def inputs(draw, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """1 to 6 samples of ``shape`` with awkward relations between rows, at a power-of-two
    scale anywhere in ``dtype``'s range (each row may get its own). Finite in ``dtype``."""
    n = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**32 - 1))
    g = torch.Generator().manual_seed(seed)
    rows = [torch.randn(shape, generator=g, dtype=torch.float64)]
    for _ in range(n - 1):
        kind = draw(st.sampled_from(_KINDS))
        base = rows[draw(st.integers(0, len(rows) - 1))]
        delta = 10.0 ** draw(st.sampled_from((-3, -7, -12)))
        noise = torch.randn(shape, generator=g, dtype=torch.float64)
        row = {
            "fresh": noise,
            "zero": torch.zeros(shape, dtype=torch.float64),
            "duplicate": base.clone(),
            "parallel": base + delta * base.norm() * noise / noise.norm(),
            "antipodal": -base + delta * base.norm() * noise / noise.norm(),
            "scaled": base * 2.0 ** draw(st.integers(-8, 8)),
        }[kind]
        rows.append(row)
    x = torch.stack(rows)
    info = torch.finfo(dtype)
    low, high = math.frexp(info.tiny)[1] - 20, math.frexp(info.max)[1] - 4
    scale = draw(st.one_of(st.integers(low, high), st.integers(-8, 8)))
    if draw(st.booleans()):  # one exponent for all rows, or one per row
        exponents = torch.full((n,), scale)
    else:
        exponents = torch.tensor([draw(st.integers(low, high)) for _ in range(n)])
    # no row may overflow the dtype: its largest entry stays below 2^(top exponent - 1)
    peaks = torch.frexp(x.reshape(n, -1).abs().amax(1))[1]
    exponents = torch.minimum(exponents, math.frexp(info.max)[1] - 1 - peaks)
    x = torch.ldexp(x, exponents.reshape(-1, *([1] * len(shape)))).to(dtype)
    assert bool(torch.isfinite(x).all())
    return x


# ---------------------------------------------------------------------- checks
def _attempt(fn):
    """The value, or None when the documented OverflowError is raised."""
    try:
        return fn()
    except OverflowError as exc:
        assert "X" in str(exc), exc  # it names the input
        return None


def check_gram(obj, x: torch.Tensor, exact: bool, tol: float | None = None) -> None:
    gram = _attempt(lambda: obj.gram(x))
    diag = _attempt(lambda: obj.diag(x))
    if tol is None:
        tol = 1e-4 if x.dtype == torch.float32 else 1e-9
    info = torch.finfo(x.dtype)
    # values in the subnormal range carry an absolute error of a few of its quanta
    slack = 16 * len(x) * info.tiny * info.eps
    if gram is not None:
        assert gram.dtype == x.dtype and gram.shape == (len(x), len(x))
        assert bool(torch.isfinite(gram).all()), gram
        assert torch.equal(gram, gram.T), "not exactly symmetric"
        if exact and math.isfinite(tol):
            evals = torch.linalg.eigvalsh(gram.double())
            trace = float(torch.diagonal(gram).double().sum())
            assert float(evals.min()) >= -1e-6 * trace - slack, (evals, trace)
            m = max(1, len(x) // 2)
            cross = _attempt(lambda: obj.gram(x[:m], x))
            if cross is not None and math.isfinite(tol):
                scale = float(gram.abs().max())
                assert float((cross - gram[:m]).abs().max()) <= tol * scale + slack
    if diag is not None:
        assert diag.dtype == x.dtype and diag.shape == (len(x),)
        assert bool(torch.isfinite(diag).all())
        assert bool((diag >= 0).all())
        if gram is not None and math.isfinite(tol):
            scale = float(diag.abs().max())
            err = float((torch.diagonal(gram) - diag).abs().max())
            assert err <= tol * scale + slack, (torch.diagonal(gram), diag)


def _fuzz(family: str, data) -> None:
    approximations = _methods(family)[1:]
    # half the examples for the exact kernel (where the numerics live), half spread over
    # the approximations
    method = data.draw(st.sampled_from(["exact"] * max(1, len(approximations))
                                       + approximations), label="method")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    event(f"{method} {str(dtype)[6:]}")  # --hypothesis-show-statistics shows the spread
    if method == "exact":
        variant = data.draw(st.sampled_from(variants(family)), label="variant")
        obj = kz.kernel(family, **dict(variant))
    else:
        variant = data.draw(st.sampled_from(_approx_variants(family)), label="variant")
        try:
            obj = fitted(family, variant, method, dtype)
        except ValueError:  # a variant this method does not take (e.g. no Dense(1))
            reject()
    shape = _shape(obj.kernel if method != "exact" else obj)
    x = data.draw(inputs(shape, dtype), label="x")
    check_gram(obj, x, exact=method == "exact")


@pytest.mark.parametrize("family", kz.available())
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_fuzz_family(family, data):
    """Finite, symmetric, PSD (exact), diag-consistent Grams, or an OverflowError."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # tiny budgets, scales
        _fuzz(family, data)


def test_every_family_is_fuzzed_with_all_its_choices():
    """The enumeration itself: every registered family, its methods and choice values."""
    for family in kz.available():
        assert "exact" in _methods(family)
        seen = {}
        for variant in variants(family):
            for name, value in variant:
                seen.setdefault(name, set()).add(value)
        for name, choices in _choices(family).items():
            assert seen[name] == set(choices), (family, name)
    assert {"activation", "architecture"} <= set(_choices("nngp"))


# ---------------------------------------------------------------------- homogeneity
def _unit_rows(shape, seed=0) -> torch.Tensor:
    """A zero row, a duplicate, a near-parallel and a near-antipodal partner."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    noise = torch.randn(2, *shape, generator=g, dtype=torch.float64)
    near = base[0] + 1e-3 * noise[0]
    anti = -base[1] + 1e-3 * noise[1]
    return torch.stack([base[0], base[1], base[2], torch.zeros_like(base[0]), base[0],
                        near, anti])


def covering(family: str, keep=lambda kernel: True) -> list[tuple]:
    """A few of the variants ``keep`` accepts that together take every value their choice
    parameters take: the defaults and ``compare_variants`` (where kept), then greedily."""
    all_variants = [v for v in variants(family) if keep(kz.kernel(family, **dict(v)))]
    chosen = []
    for overrides in registry.kernel_class(family).compare_variants:
        params = kz.kernel(family, **overrides).get_params()
        chosen += [v for v in all_variants if all(params[n] == val for n, val in v)][:1]
    missing = {(n, val) for v in all_variants for n, val in v} - {p for v in chosen for p in v}
    while missing:
        best = max(all_variants, key=lambda v: len(missing & set(v)))
        chosen.append(best)
        missing -= set(best)
    return chosen


def _exponents(dtype) -> tuple[int, ...]:
    """Scales 2^e: deep underflow, then three where the Gram fits but its unscaled
    intermediates (squared norms, products of variances) do not, then overflow."""
    top = math.frexp(torch.finfo(dtype).max)[1]
    return (-top // 2 - 4, -top // 3, top // 3, top // 2 - 4, top - 8)


def _homogeneous_cases():
    for family in kz.available():
        for variant in covering(family, keep=lambda kernel: kernel.homogeneity is not None):
            for dtype in DTYPES:
                for exponent in _exponents(dtype):
                    yield family, variant, dtype, exponent


def _homogeneous_params():
    for family, variant, dtype, exponent in _homogeneous_cases():
        label = f"{family}{dict(variant)}-{str(dtype)[6:]}-2^{exponent}"
        yield pytest.param(family, variant, dtype, exponent, id=label)


@pytest.mark.parametrize("family,variant,dtype,exponent", list(_homogeneous_params()))
def test_homogeneous_kernels_scale(family, variant, dtype, exponent):
    """k(2^e x, 2^e y) = 2^(2 p e) k(x, y) wherever that fits the dtype: the exact Gram
    of scaled inputs, not an overflow, NaN or a zero from an underflowing intermediate."""
    k = kz.kernel(family, **dict(variant))
    x = _unit_rows(IMAGE_SHAPE if k.is_conv else (VECTOR_DIM,)).to(dtype)
    unit = k.gram(x.double())
    factor_exp = 2 * k.homogeneity * exponent
    info = torch.finfo(dtype)
    peak = float(unit.abs().max())
    fits = math.log2(peak) + factor_exp < math.log2(info.max) - 2 if peak > 0 else True
    normal = math.log2(peak) + factor_exp > math.log2(info.tiny) + 30 if peak > 0 else True
    scaled = torch.ldexp(x, torch.tensor(exponent))
    if not fits:
        with pytest.raises(OverflowError):
            k.gram(scaled)
        return
    got = k.gram(scaled)
    assert got.dtype == dtype and bool(torch.isfinite(got).all())
    if normal:  # compared at unit scale (norms of tiny values underflow)
        back = torch.ldexp(got.double(), torch.tensor(-factor_exp))
        tol = 2e-3 if dtype == torch.float32 else 1e-9
        err = float((back - unit).norm() / unit.norm())
        assert err < tol, err
        d = torch.ldexp(k.diag(scaled).double(), torch.tensor(-factor_exp))
        assert float((d - torch.diagonal(unit)).norm() / torch.diagonal(unit).norm()) < tol


def _erf_params():
    for family in ("nngp", "ntk"):
        for dtype in DTYPES:
            for scale in (1.0, 16.0, 1e3, 1e6):
                yield pytest.param(family, dtype, scale, id=f"{family}-{str(dtype)[6:]}-{scale:g}")


@pytest.mark.parametrize("family,dtype,scale", list(_erf_params()))
def test_erf_precision(family, dtype, scale):
    """erf nets with inputs of size ~100 and up (found by the fuzz suite). Before the
    bounded dual map (``activations.erf_terms``) the ntk Gram of one row was 8e-4 off at
    size 100 and 17% off at 2000 in float32, 2e29 instead of 1.3e5 at 1e5; in float64 6e-7
    off at 1e5 and 2e170 instead of 1.3e8 at 1e8, while ``diag`` stayed right (the
    reference)."""
    x = torch.tensor([[98.6237, -18.7794, -139.4425, 36.3796, -69.4094]],
                     dtype=torch.float64) * scale
    k = kz.kernel(family, activation="erf")
    reference = float(k.diag(x))
    tol = 1e-5 if dtype == torch.float32 else 1e-7
    assert abs(float(k.gram(x.to(dtype))) - reference) <= tol * reference
    assert abs(float(k.diag(x.to(dtype))) - reference) <= tol * reference


def test_erf_large_rows():
    """An erf nngp Gram with a row of size 1e77 (float64; found by the fuzz suite): k(x, x)
    of that row was 0 instead of 1.18 and the Gram had an eigenvalue -0.27 before the
    bounded dual map; now the Gram is right and PSD."""
    x = torch.tensor([[1.5410, -0.29343, -2.1788, 0.56843, -1.0845],
                      [-1.6195e77, 4.6704e76, 9.7037e76, -8.3284e76, -4.6704e76]],
                     dtype=torch.float64)
    k = kz.kernel("nngp", activation="erf")
    gram = k.gram(x)
    assert float(torch.linalg.eigvalsh(gram).min()) > 0
    assert torch.allclose(torch.diagonal(gram), k.diag(x), rtol=1e-9)

"""One shared test mixin that every family and every approximation runs through.

A test class sets the hooks and inherits the checks:

- ``create(self)`` -> an exact kernel or a *fitted* approximation
- ``inputs(self, dtype)`` -> ``(X, Y)`` torch tensors (X also fits the approximation)
- ``rtol32``, ``rtol64`` tolerances; ``scales`` the input scales that must stay finite
- ``is_approximation``: approximations are checked against their own features
- ``expects_gradient(self)``: False for piecewise-constant maps (step features),
  whose output carries no gradient

Checks: symmetry, PSD within round-off, ``diag == diagonal(gram)``, a cross
block equals the block of the full Gram, invariance to the memory budget
(which must change how the Gram is tiled), float32/float64, numpy input,
determinism, no NaN/Inf values or gradients for zero, identical and scaled
inputs, and for approximations the Gram against an independent sum over the
features and a save/load round trip.

:class:`GpytorchKernelChecks` adds gpytorch's own ``BaseKernelTestCase`` to a
pytest class through the same ``create`` hook.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from gpytorch.test.base_kernel_test_case import BaseKernelTestCase


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


class KernelTestMixin:
    rtol32 = 1e-4
    rtol64 = 1e-10
    scales: tuple[float, ...] = (1e-3, 1.0, 1e3)
    scales32: tuple[float, ...] | None = None
    is_approximation = False
    supports_grad = True

    # ---------------------------------------------------------------- hooks
    def create(self):
        raise NotImplementedError

    def inputs(self, dtype: torch.dtype = torch.float64):
        raise NotImplementedError

    def fitted(self, dtype: torch.dtype = torch.float64):
        """The object under test, fitted on X when it is an approximation."""
        obj = self.create()
        if self.is_approximation:
            x, _ = self.inputs(dtype)
            obj = obj.fit(x)
        return obj

    def tol(self, dtype: torch.dtype) -> float:
        return self.rtol32 if dtype == torch.float32 else self.rtol64

    def expects_gradient(self) -> bool:
        """Whether the Gram of inputs that require grad carries a gradient (override)."""
        return True

    # ---------------------------------------------------------------- checks
    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_symmetric_psd_and_dtype(self, dtype):
        x, _ = self.inputs(dtype)
        k = self.fitted(dtype)
        gram = k.gram(x)
        assert gram.dtype == dtype
        assert gram.shape == (x.shape[0], x.shape[0])
        assert torch.isfinite(gram).all()
        assert torch.equal(gram, gram.T) or rel_err(gram, gram.T) < self.tol(dtype)
        evals = torch.linalg.eigvalsh(gram.double())
        assert evals.min() >= -10 * self.tol(dtype) * evals.abs().max()

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_diag_matches_gram(self, dtype):
        x, _ = self.inputs(dtype)
        k = self.fitted(dtype)
        d = k.diag(x)
        assert d.shape == (x.shape[0],)
        assert d.dtype == dtype
        torch.testing.assert_close(
            d,
            torch.diagonal(k.gram(x)),
            rtol=self.tol(dtype),
            atol=self.tol(dtype) * float(d.abs().max()),
        )

    def test_cross_block_equals_full_gram_block(self):
        x, y = self.inputs(torch.float64)
        k = self.fitted(torch.float64)
        both = torch.cat([x, y])
        full = k.gram(both)
        cross = k.gram(x, y)
        assert cross.shape == (x.shape[0], y.shape[0])
        torch.testing.assert_close(
            cross,
            full[: x.shape[0], x.shape[0] :],
            rtol=self.rtol64,
            atol=self.rtol64 * float(full.abs().max()),
        )
        sub = k.gram(x, x[:3])
        torch.testing.assert_close(
            sub,
            full[: x.shape[0], :3],
            rtol=self.rtol64,
            atol=self.rtol64 * float(full.abs().max()),
        )

    def test_memory_budget_invariance(self):
        x, y = self.inputs(torch.float64)
        k = self.fitted(torch.float64)
        ref = k.gram(x)
        ref_xy = k.gram(x, y)
        blocks = {}
        for budget in (256, 50_000, "1GB"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # tiny budgets warn
                with _counting_blocks(k) as count:
                    out = k.gram(x, memory_budget=budget)
                    out_xy = k.gram(x, y, memory_budget=budget)
            blocks[budget] = count["n"]
            torch.testing.assert_close(
                out, ref, rtol=self.rtol64, atol=self.rtol64 * float(ref.abs().max())
            )
            torch.testing.assert_close(
                out_xy, ref_xy, rtol=self.rtol64, atol=self.rtol64 * float(ref.abs().max())
            )
        if blocks["1GB"]:  # generic tiling: the budget must change it, not be ignored
            assert blocks[256] > blocks["1GB"], blocks

    def test_numpy_input_and_determinism(self):
        x, y = self.inputs(torch.float64)
        k1, k2 = self.fitted(torch.float64), self.fitted(torch.float64)
        out_np = k1.gram(x.numpy(), y.numpy())
        assert isinstance(out_np, torch.Tensor)
        torch.testing.assert_close(out_np, k2.gram(x, y), rtol=0, atol=0)

    def test_bad_inputs_are_named(self):
        x, y = self.inputs(torch.float64)
        k = self.fitted(torch.float64)
        bad = x.clone()
        bad.view(-1)[0] = float("nan")
        with pytest.raises(ValueError, match="NaN"):
            k.gram(bad)
        with pytest.raises(ValueError, match="empty"):
            k.gram(x[:0])
        with pytest.raises(TypeError, match="dtype"):
            k.gram(x, y.float())
        with pytest.raises(ValueError, match="memory_budget"):
            k.gram(x, memory_budget=0)

    @pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
    def test_zero_identical_scaled_inputs_are_finite(self, dtype):
        x, _ = self.inputs(dtype)
        k = self.fitted(dtype)
        zeros = torch.zeros_like(x[:2])
        same = torch.cat([x[:1], x[:1]])
        for probe in (zeros, same, torch.cat([zeros[:1], x[:2]])):
            gram = k.gram(probe)
            assert torch.isfinite(gram).all()
            assert torch.isfinite(k.diag(probe)).all()
        if not self.is_approximation:
            g = k.gram(same)
            torch.testing.assert_close(g[0, 1], g[0, 0], rtol=self.tol(dtype), atol=0)
        scales = self.scales if dtype == torch.float64 else (self.scales32 or self.scales)
        for s in scales:
            gram = k.gram(x[:4] * s)
            assert torch.isfinite(gram).all(), f"non-finite Gram at scale {s}"

    def test_gradients_finite_at_zero_and_identical_inputs(self):
        if not self.supports_grad:
            pytest.skip("no differentiable path")
        x, _ = self.inputs(torch.float64)
        k = self.fitted(torch.float64)
        for probe in (torch.zeros_like(x[:2]), torch.cat([x[:1], x[:1]]), x[:3]):
            leaf = probe.clone().requires_grad_(True)
            out = k.gram(leaf, probe[:2].clone()).sum() + k.diag(leaf).sum()
            assert torch.isfinite(out)
            if not self.expects_gradient():  # piecewise-constant maps (step features)
                assert not out.requires_grad
                continue
            assert out.requires_grad, "the Gram of inputs that require grad has no gradient"
            (grad,) = torch.autograd.grad(out, leaf)
            assert torch.isfinite(grad).all()

    # ---------------------------------------------------------------- approximations only
    def test_gram_is_features_product(self):
        if not self.is_approximation:
            pytest.skip("exact kernel")
        x, y = self.inputs()
        a = self.fitted()
        if not a.has_features:
            pytest.skip(f"{a.method} has no explicit features")
        fx, fy = a.features(x), a.features(y)
        assert fx.shape == (x.shape[0], a.n_features)
        # an independent sum over the features (not the GEMM that gram() tiles)
        expected = (fx.double()[:, None, :] * fy.double()[None, :, :]).sum(-1)
        atol = 1e-12 * float(expected.abs().max())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # tiny budgets warn
            for budget in (None, 2_000):
                torch.testing.assert_close(a.gram(x, y, memory_budget=budget).double(), expected,
                                           rtol=1e-10, atol=atol)
        torch.testing.assert_close(a.diag(x).double(), fx.double().square().sum(1),
                                   rtol=1e-10, atol=atol)

    def test_save_load_roundtrip(self, tmp_path):
        if not self.is_approximation:
            pytest.skip("exact kernel")
        import kernelzoo as kz

        x, y = self.inputs()
        a = self.fitted()
        a.save(tmp_path / "a.pt")
        b = kz.load(tmp_path / "a.pt")
        assert b.kernel == a.kernel and b.method == a.method
        torch.testing.assert_close(b.gram(x, y), a.gram(x, y), rtol=0, atol=0)
        if a.has_features:
            assert b.n_features == a.n_features


class SpecKernelChecks(KernelTestMixin):
    """The mixin for kernels given as ``(family, params)`` by a class-level
    ``pytest.mark.parametrize("family,params", ...)``: conv architectures get
    ``image_inputs``, the rest ``vector_inputs`` (both defined by the subclass)."""

    rtol64 = 1e-10
    rtol32 = 1e-4

    @pytest.fixture(autouse=True)
    def _params(self, family, params):
        self.family, self.params = family, params

    def create(self):
        import kernelzoo as kz

        return kz.kernel(self.family, **self.params)

    def inputs(self, dtype=torch.float64):
        if self.params.get("architecture") == "conv":
            return self.image_inputs(dtype)
        return self.vector_inputs(dtype)


class _counting_blocks:
    """Count the tiles an exact kernel evaluates through the generic tiling (``_block``;
    kernels with their own blocking count 0), or the feature maps (``_features``) or
    tiles (``_gram_block``, Gram-only) an approximation evaluates."""

    def __init__(self, obj) -> None:
        self.obj = obj
        self.count = {"n": 0}

    def __enter__(self):
        from kernelzoo.approx.base import Approximation

        obj = self.obj
        if not isinstance(obj, Approximation):
            self.name = "_block"
        elif obj.has_features and not obj.gram_only:
            self.name = "_features"
        else:
            self.name = "_gram_block"
        original = getattr(obj, self.name)

        def counted(*args, **kwargs):
            self.count["n"] += 1
            return original(*args, **kwargs)

        obj.__dict__[self.name] = counted  # an instance attribute shadows the method
        return self.count

    def __exit__(self, *exc) -> None:
        self.obj.__dict__.pop(self.name, None)


class GpytorchKernelChecks(BaseKernelTestCase):
    """gpytorch's ``BaseKernelTestCase`` on a pytest class, through the mixin's ``create()``.

    ``create()`` returns an exact kernel or an *unfitted* approximation (fitted
    by the gpytorch kernel on the first inputs it sees); kernels with a
    trainable lengthscale also run the ARD checks. Data are gpytorch's own
    vectors (override the ``create_data_*`` hooks for images).
    """

    seed = 0

    @pytest.fixture(autouse=True)
    def _gpytorch_seed(self):
        self.setUp()  # BaseTestCase's seeding (pytest calls no unittest hooks here)
        yield
        self.tearDown()

    # unittest's assertions that the base case uses beyond its own
    def assertNotEqual(self, first, second):
        assert first != second

    def assertRaisesRegex(self, exception, pattern):
        return pytest.raises(exception, match=pattern)

    def _zoo(self):
        from kernelzoo.kernels.base import Kernel

        obj = self.create()
        return obj, (obj if isinstance(obj, Kernel) else obj.kernel)

    def create_kernel_no_ard(self, **kwargs):
        return self._zoo()[0].to_gpytorch(**kwargs)

    def create_kernel_ard(self, num_dims, **kwargs):
        obj, kernel = self._zoo()
        if "lengthscale" not in kernel.trainable_params().values():
            raise NotImplementedError  # the base case then skips the ARD checks
        return obj.to_gpytorch(ard_num_dims=num_dims, **kwargs)

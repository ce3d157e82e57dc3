"""One shared test mixin that every family and every approximation runs through.

A test class sets the hooks and inherits the checks:

- ``create(self)`` -> an exact kernel or a *fitted* approximation
- ``inputs(self, dtype)`` -> ``(X, Y)`` torch tensors (X also fits the approximation)
- ``rtol32``, ``rtol64`` tolerances; ``scales`` the input scales that must stay finite
- ``is_approximation``: approximations are checked against their own features

Checks: symmetry, PSD within round-off, ``diag == diagonal(gram)``, a cross
block equals the block of the full Gram, invariance to the memory budget,
float32/float64, numpy input, determinism, no NaN/Inf values or gradients
for zero, identical and scaled inputs.
"""

from __future__ import annotations

import pytest
import torch


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
        import warnings

        for budget in (2_000, 50_000, "1GB"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # tiny budgets warn
                out = k.gram(x, memory_budget=budget)
                out_xy = k.gram(x, y, memory_budget=budget)
            torch.testing.assert_close(
                out, ref, rtol=self.rtol64, atol=self.rtol64 * float(ref.abs().max())
            )
            torch.testing.assert_close(
                out_xy, k.gram(x, y), rtol=self.rtol64, atol=self.rtol64 * float(ref.abs().max())
            )

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
            if not out.requires_grad:  # piecewise-constant maps (step features)
                continue
            (grad,) = torch.autograd.grad(out, leaf, allow_unused=True)
            if grad is not None:
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
        torch.testing.assert_close(a.gram(x, y), fx @ fy.T)

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

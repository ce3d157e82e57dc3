"""Saved approximations detect their own damage (issue 14, item 4).

Format ``kernelzoo-approximation/2``: the registry keys (family, method), the
kernel's parameters, the approximation's settings and its fitted state, with a
sha256 over a canonical serialisation of all of it. Each kind of damage has
its own error; files without a checksum (this format, or the previous one)
load with a 'not verified' warning.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import kernelzoo as kz
from kernelzoo import registry
from kernelzoo.approx.base import FORMAT, payload_checksum

DATA = Path(__file__).parent / "data" / "approx_v1"


def _x(n=6, d=3, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _images(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, 5, 5, generator=g, dtype=torch.float64)


#: one cheap fitted example of every (family, method) in the registry
_SETTINGS = {
    "nystrom": dict(budget=3),
    "rff": dict(budget=8), "orf": dict(budget=8), "random-features": dict(budget=8),
    "monte-carlo": dict(budget=4), "empirical": dict(budget=4),
    "layerwise": dict(budget=[3, 3], n_patches=100, kmeans_iters=2),
    "supervised": dict(budget=[3, 3], n_patches=100, kmeans_iters=2, epochs=1, progress=False),
}


def _pairs():
    for family in kz.available():
        for method in registry.kernel_class(family).approximations:
            yield family, method


def _fitted(family, method):
    k = kz.kernel(family)
    x = _images() if k.is_conv else _x()
    a = k.approximate(method, seed=1, **_SETTINGS[method])
    y = torch.tensor([0, 1, 0, 1, 0, 1]) if a.requires_labels else None
    return a.fit(x, y), x


def _save(a, path):
    a.save(path)
    return torch.load(path, weights_only=True)


def _write(payload, path, checksum=True):
    payload = dict(payload)
    if checksum:
        payload["checksum"] = payload_checksum(payload)
    torch.save(payload, path)


@pytest.mark.parametrize("family,method", list(_pairs()))
def test_round_trip_is_bit_identical_and_names_registry_keys(family, method, tmp_path):
    a, x = _fitted(family, method)
    path = tmp_path / "a.pt"
    payload = _save(a, path)
    assert payload["format"] == FORMAT == "kernelzoo-approximation/2"
    assert payload["family"] == family and payload["method"] == method
    assert "class" not in payload and "module" not in str(payload.get("params"))
    assert payload["checksum"] == payload_checksum(payload)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = kz.load(path)
    assert type(b) is type(a) and b.kernel == a.kernel
    assert torch.equal(b.gram(x), a.gram(x))


def test_single_bit_flips_are_detected_or_harmless(tmp_path):
    """Flip one bit at many offsets of a saved file: each flip raises (or warns that
    the file is not verified) or loads to a bit-identical Gram; none changes it silently."""
    a, x = _fitted("rbf", "rff")
    path = tmp_path / "a.pt"
    a.save(path)
    data = path.read_bytes()
    ref = a.gram(x)
    offsets = sorted(set(range(0, len(data), max(1, len(data) // 400))) | {len(data) - 1})
    outcomes = {"raised": 0, "identical": 0, "warned": 0}
    for i, offset in enumerate(offsets):
        damaged = bytearray(data)
        damaged[offset] ^= 1 << (i % 8)
        target = tmp_path / "flip.pt"
        target.write_bytes(bytes(damaged))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                b = kz.load(target)
            except (ValueError, TypeError) as exc:
                assert str(target) in str(exc)
                outcomes["raised"] += 1
                continue
        gram = b.gram(x)
        assert torch.equal(gram, ref), f"bit flip at byte {offset} changed the Gram silently"
        outcomes["warned" if caught else "identical"] += 1
    assert outcomes["raised"] > 0.5 * len(offsets), outcomes


def test_each_kind_of_damage_has_its_own_error(tmp_path):
    a, x = _fitted("rbf", "rff")
    payload = _save(a, tmp_path / "a.pt")
    path = tmp_path / "b.pt"

    # corrupt bytes: not a torch file at all
    path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ValueError, match="cannot be read"):
        kz.load(path)
    # edited metadata, checksum left as it was
    edited = dict(payload, family="arccos")
    torch.save(edited, path)
    with pytest.raises(ValueError, match="checksum"):
        kz.load(path)
    # a consistent-looking edit (checksum recomputed): rff is no approximation of arccos
    _write({k: v for k, v in edited.items() if k != "checksum"}, path)
    with pytest.raises(ValueError, match="'rff' is not an approximation of arccos"):
        kz.load(path)
    # unknown method
    _write({**{k: v for k, v in payload.items() if k != "checksum"}, "method": "magic"}, path)
    with pytest.raises(ValueError, match="unknown method 'magic'"):
        kz.load(path)
    # missing key
    _write({k: v for k, v in payload.items() if k not in ("checksum", "state")}, path)
    with pytest.raises(ValueError, match="missing key 'state'"):
        kz.load(path)
    # wrong tensor shape
    state = dict(payload["state"], weights_=torch.zeros(5, 3, dtype=torch.float64))
    _write({**{k: v for k, v in payload.items() if k != "checksum"}, "state": state}, path)
    with pytest.raises(ValueError, match=r"weights_.*\(5, 3\).*\(8, 3\)"):
        kz.load(path)
    # parameters that disagree with the spec string
    _write({**{k: v for k, v in payload.items() if k != "checksum"},
            "params": {"lengthscale": 2.0}}, path)
    with pytest.raises(ValueError, match="spec"):
        kz.load(path)
    # parameters the family rejects
    _write({**{k: v for k, v in payload.items() if k not in ("checksum", "spec")},
            "params": {"lengthscale": -1.0}}, path)
    with pytest.raises(ValueError, match="lengthscale"):
        kz.load(path)
    # an unknown format
    _write({**{k: v for k, v in payload.items() if k != "checksum"},
            "format": "kernelzoo-approximation/9"}, path)
    with pytest.raises(ValueError, match="format"):
        kz.load(path)


def test_missing_checksum_loads_with_a_not_verified_warning(tmp_path):
    a, x = _fitted("rbf", "nystrom")
    payload = _save(a, tmp_path / "a.pt")
    path = tmp_path / "b.pt"
    _write({k: v for k, v in payload.items() if k != "checksum"}, path, checksum=False)
    with pytest.warns(UserWarning, match="not verified"):
        b = kz.load(path)
    assert torch.equal(b.gram(x), a.gram(x))


def test_non_finite_state_is_refused(tmp_path):
    a, _ = _fitted("rbf", "rff")
    payload = _save(a, tmp_path / "a.pt")
    state = dict(payload["state"])
    state["offsets_"] = state["offsets_"].clone()
    state["offsets_"][0] = float("nan")
    path = tmp_path / "b.pt"
    _write({**{k: v for k, v in payload.items() if k != "checksum"}, "state": state}, path)
    with pytest.raises(ValueError, match="offsets_.*NaN"):
        kz.load(path)


@pytest.mark.parametrize("name,inputs", [("rff", "x"), ("nystrom", "x"),
                                         ("layerwise", "images")])
def test_previous_format_files_still_load(name, inputs):
    """Files written by the code before this format (tests/data/approx_v1, see its README)."""
    x = np.load(DATA / f"approx_v1_inputs_{inputs}.npy")
    expected = np.load(DATA / f"approx_v1_{name}_gram.npy")
    with pytest.warns(UserWarning, match="not verified"):
        a = kz.load(DATA / f"approx_v1_{name}.pt")
    np.testing.assert_allclose(a.gram(x).numpy(), expected, rtol=1e-12, atol=1e-14)


def test_save_needs_a_fit_and_load_names_missing_files(tmp_path):
    with pytest.raises(RuntimeError, match="fit"):
        kz.kernel("rbf").approximate("rff", budget=4).save(tmp_path / "a.pt")
    with pytest.raises(FileNotFoundError):
        kz.load(tmp_path / "missing.pt")
    assert not os.path.exists(tmp_path / "a.pt")

"""cross_scan / cross_merge: the exact orders of DESIGN.md section 2, and merge = adjoint of scan."""

from __future__ import annotations

import pytest
import torch

from cliphaze.shapes import check
from cliphaze.ssm import cross_merge, cross_scan, scan_orders

SIZES = [(1, 1), (1, 5), (4, 1), (3, 3), (4, 6), (7, 5)]


def expected_orders(h, w, directions):
    """Pixel (row-major index) visited at each position, written out with explicit loops."""
    row = [i * w + j for i in range(h) for j in range(w)]          # i outer, j inner
    col = [i * w + j for j in range(w) for i in range(h)]          # j outer, i inner
    return {1: [row], 2: [row, row[::-1]], 4: [row, col, row[::-1], col[::-1]]}[directions]


@pytest.mark.parametrize(("h", "w"), SIZES)
@pytest.mark.parametrize("directions", [1, 2, 4])
def test_orders_are_exactly_the_defined_ones(h, w, directions):
    index = torch.arange(h * w, dtype=torch.float64).reshape(1, 1, h, w).repeat(2, 3, 1, 1)
    xs = cross_scan(index, directions)
    assert xs.shape == (2, directions, 3, h * w)
    expected = torch.tensor(expected_orders(h, w, directions), dtype=torch.float64)
    for k in range(directions):
        assert torch.equal(xs[1, k, 2], expected[k]), f"direction {k}"
    assert torch.equal(scan_orders(h, w, directions), expected.long())


@pytest.mark.parametrize(("h", "w"), SIZES)
@pytest.mark.parametrize("directions", [1, 2, 4])
def test_merge_is_the_adjoint_of_scan(h, w, directions):
    gen = torch.Generator().manual_seed(h * 10 + w)
    x = torch.randn(2, 3, h, w, generator=gen, dtype=torch.float64)
    y = torch.randn(2, directions, 3, h * w, generator=gen, dtype=torch.float64)
    lhs = (cross_scan(x, directions) * y).sum()
    rhs = (x * cross_merge(y, h, w)).sum()
    check(lhs, rhs, rtol=1e-12, atol=1e-12, name="<scan(x), y> vs <x, merge(y)>")


@pytest.mark.parametrize("directions", [1, 2, 4])
def test_merge_of_scan_counts_every_direction_once(directions):
    x = torch.randn(1, 2, 5, 3, dtype=torch.float64)
    check(cross_merge(cross_scan(x, directions), 5, 3), directions * x, rtol=0, atol=0, name="merge(scan(x))")


def test_merge_is_the_autograd_transpose_of_scan():
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randn(1, 4, 2, 12, dtype=torch.float64)
    (grad,) = torch.autograd.grad(cross_scan(x), x, y)
    check(grad, cross_merge(y, 3, 4), rtol=0, atol=0, name="vjp of scan")


def test_bad_arguments():
    with pytest.raises(ValueError, match="directions"):
        cross_scan(torch.zeros(1, 1, 2, 2), 3)
    with pytest.raises(ValueError, match=r"\(b, d, h, w\)"):
        cross_scan(torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match="h \\* w"):
        cross_merge(torch.zeros(1, 4, 1, 6), 2, 2)
    with pytest.raises(ValueError, match="directions"):
        cross_merge(torch.zeros(1, 3, 1, 4), 2, 2)

"""The mechanism lab (lesson 07): the task generator's guarantees and the runner's outputs."""

from __future__ import annotations

import math

import pytest
import torch

from cliphaze.analysis.mechanism_lab import (
    METRICS,
    LabConfig,
    TaskConfig,
    aggregation_parameters,
    build_net,
    choose_lr_scale,
    far_fraction,
    local_reach,
    make_optimizer,
    make_task,
    run_lab,
)


def test_task_is_seeded_and_deterministic():
    a, b, c = make_task(3, seed=5), make_task(3, seed=5), make_task(3, seed=6)
    for name in ("clear", "hazy", "transmission", "copy_distance", "copy_yx"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.hazy, c.hazy)
    state = torch.random.get_rng_state()
    make_task(2, seed=0)
    assert torch.equal(state, torch.random.get_rng_state()), "the generator must not touch the global RNG"


def test_transmission_ranges_and_scattering_model():
    cfg = TaskConfig()
    task = make_task(6, cfg, seed=1)
    t, dense = task.transmission, task.dense
    assert dense.any() and (~dense).any()
    assert float(t[dense].min()) >= cfg.t_dense[0] and float(t[dense].max()) <= cfg.t_dense[1]
    assert float(t[~dense].min()) >= cfg.t_thin[0] - 1e-6 and float(t[~dense].max()) <= cfg.t_thin[1] + 1e-6
    assert torch.allclose(task.density, 1 - t)
    quiet = make_task(2, seed=1, noise_std=0.0)
    model = quiet.clear * quiet.transmission + cfg.airlight * (1 - quiet.transmission)
    assert torch.allclose(quiet.hazy, model.clamp(0, 1), atol=1e-6)
    zero = make_task(2, seed=1, t_dense=(0.0, 0.0), noise_std=0.0)
    assert torch.allclose(zero.hazy[zero.dense.expand_as(zero.hazy)], torch.tensor(cfg.airlight))


def test_copies_lie_where_documented():
    task = make_task(4, seed=2)
    b, _, h, w = task.dense.shape
    for i in range(b):
        ys, xs = torch.nonzero(task.dense[i, 0], as_tuple=True)
        for y, x in zip(ys.tolist(), xs.tolist()):
            cy, cx = task.copy_yx[i, :, y, x].tolist()
            assert cy == y, "the bank spans all rows: the copy is in the same row"
            assert not task.dense[i, 0, cy, cx]
            assert torch.equal(task.base[i, :, cy, cx], task.base[i, :, y, x])
            cols = torch.nonzero(task.dense[i, 0, y]).flatten()
            x0, x1 = int(cols.min()), int(cols.max()) + 1
            assert task.copy_distance[i, 0, y, x] == max(abs(cy - y), abs(cx - x)) == min(x - x0 + 1, x1 - x)
    assert (task.copy_distance[~task.dense] == 0).all()
    assert far_fraction(task, 0) == 1.0 and 0 < far_fraction(task, 8) < 1


def test_local_content_has_no_copy():
    task = make_task(3, seed=2, content="local")
    assert torch.isinf(task.copy_distance[task.dense]).all()
    assert far_fraction(task, 1000) == 1.0


def test_local_reach_matches_the_attention_only_network():
    cfg = LabConfig(channels=4, depth=2, window_size=4, d_state=2)
    net = build_net("attention", cfg, seed=0)
    torch.nn.init.normal_(net.head.weight, std=0.1)
    hazy = torch.rand(1, 3, 8, 48, requires_grad=True)
    out = net(hazy, torch.rand(1, 1, 8, 48))
    radius = 0
    for x in range(16, 24):  # one period of the two window grids
        (grad,) = torch.autograd.grad(out[0, :, 4, x].sum(), hazy, retain_graph=True)
        xs = torch.nonzero(grad.abs().sum((0, 1, 2)) > 0).flatten()
        radius = max(radius, int((xs - x).abs().max()))
    assert radius == local_reach(2, 4) == cfg.reach == 8
    assert local_reach(2, 4, shift_alternate=False) == 2 + 2 * 4
    assert local_reach(1, 4) == 6 and local_reach(0, 4) == 2


def test_lr_multiplier_reaches_the_aggregation_group():
    net = build_net("density", LabConfig(channels=8, depth=2, d_state=2), seed=0)
    opt = make_optimizer(net, lr=1e-3, aggregation_lr_scale=30.0)
    groups = {g["name"]: g for g in opt.param_groups}
    agg = {id(p) for p in aggregation_parameters(net)}
    assert len(agg) == 4  # weight and bias of the density projection in each of 2 blocks
    assert {id(p) for p in groups["aggregation"]["params"]} == agg
    assert math.isclose(groups["aggregation"]["lr"], 30 * 1e-3) and math.isclose(groups["rest"]["lr"], 1e-3)
    assert not agg & {id(p) for p in groups["rest"]["params"]}
    assert len(make_optimizer(build_net("attention", LabConfig(channels=8, d_state=2)), 1e-3, 30.0).param_groups) == 1


def test_choose_lr_scale_rule():
    rows = [{"scale": 1.0, "gap": 0.01, "loss_end": 0.10}, {"scale": 10.0, "gap": 0.12, "loss_end": 0.101},
            {"scale": 100.0, "gap": 0.3, "loss_end": 0.2}]
    assert choose_lr_scale(rows) == 10.0
    assert choose_lr_scale(rows, min_gap=0.5) == 10.0  # 100 breaks the loss tolerance


def test_runner_returns_the_table_fields():
    task = TaskConfig(height=8, width=24, band_height=4, patch_width=(8, 14))
    cfg = LabConfig(channels=8, depth=2, d_state=2, steps=2, batch_size=2, n_eval=2, task=task)
    result = run_lab(cfg, variants=("attention", "density"), seeds=(0, 1), verbose=False)
    table = result.table()
    assert set(table) == {"attention", "density"}
    for row in table.values():
        assert set(row) == set(METRICS)
        assert all(len(v) == 2 for v in row.values())
    assert {"variant", "seed", "loss_end", "seconds", *METRICS} <= set(result.runs[0])
    assert len(result.runs) == 4 and ("density", 0) in result.nets and ("density", 1) not in result.nets
    assert "± " in result.to_markdown() and "hazy input" in result.to_markdown()
    mean, std = result.paired("density", "attention", "dense")
    assert math.isfinite(mean) and math.isfinite(std)


@pytest.mark.parametrize("bad", [{"content": "mirror"}, {"patch_width": (1, 100)}, {"t_dense": (0.5, 0.1)}])
def test_task_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        TaskConfig(**bad)


def test_lab_command_writes_a_table_that_loads_back(tmp_path):
    """`python -m cliphaze.analysis.mechanism_lab` writes JSON + markdown; load_result reads the table back."""
    from cliphaze.analysis.mechanism_lab import load_result, main

    js, md = tmp_path / "lab.json", tmp_path / "lab.md"
    assert main(["--steps", "1", "--seeds", "0", "--variants", "attention", "density",
                 "--json", str(js), "--markdown", str(md)]) == 0
    back = load_result(js)
    assert back.variants == ["attention", "density"] and back.config.steps == 1
    assert "density" in md.read_text() and "--steps 1" in md.read_text()
    density_run = next(r for r in __import__("json").loads(js.read_text())["runs"] if r["variant"] == "density")
    assert 0.0 <= density_run["w_m"]["dense"] <= 1.0

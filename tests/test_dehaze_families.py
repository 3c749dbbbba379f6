"""Dehazers scored per haze family: the same seeded pairs for every method, one row per family."""

import pytest
import torch

from cliphaze.analysis.dehaze_families import (
    evaluate_families,
    family_markdown,
    family_pairs,
    generalisation_gap,
)
from cliphaze.evaluate import Method


def _photos():
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, 24, 32, generator=g) for _ in range(2)], ["a", "b"]


def test_pairs_are_seeded_and_hazy_differs_from_clear():
    photos, names = _photos()
    first = family_pairs(photos, names, ["ramp", "room"], seed=7)
    again = family_pairs(photos, names, ["ramp", "room"], seed=7)
    assert list(first) == ["ramp", "room"] and len(first["room"]) == 2
    for fam in first:
        for x, y in zip(first[fam], again[fam]):
            assert torch.equal(x["hazy"], y["hazy"])
            assert torch.equal(x["clear"], photos[names.index(x["name"])])
            assert (x["hazy"] - x["clear"]).abs().mean() > 0.01     # hazed


def test_table_and_gap_from_known_methods():
    photos, names = _photos()
    pairs = family_pairs(photos, names, ["ramp", "fields"], seed=3)
    # a method that moves every image half-way to its ground truth gains exactly 20 log10(2) dB
    truth = {round(float(p["hazy"].sum()), 3): p["clear"] for items in pairs.values() for p in items}
    methods = [Method("hazy", lambda x: x),
               Method("half-way", lambda x: 0.5 * x + 0.5 * truth[round(float(x.sum()), 3)][None])]
    reports = evaluate_families(methods, pairs)
    for report in reports.values():
        s = {r["method"]: r["psnr"] for r in report.summary()}
        assert s["half-way"] == pytest.approx(s["hazy"] + 20 * torch.log10(torch.tensor(2.0)).item(), abs=1e-3)
    gap = generalisation_gap(reports, "half-way", "fields")
    ramp = {r["method"]: r["psnr"] for r in reports["ramp"].summary()}["half-way"]
    fields = {r["method"]: r["psnr"] for r in reports["fields"].summary()}["half-way"]
    assert gap == pytest.approx(ramp - fields)
    md = family_markdown(reports, held_out=["fields"])
    assert "fields (held out)" in md and "| ramp | 2 |" in md and md.count("**") == 4


def test_cli_families_writes_per_image_csv_and_spares_the_photos(tmp_path):
    import csv

    from cliphaze.cli import main
    from cliphaze.io import save_image

    photos, names = _photos()
    for p, n in zip(photos, names):
        save_image(p, tmp_path / "clear" / f"{n}.png")
    out = tmp_path / "per_image.csv"
    code = main(["eval", "--families", "ramp", "fog", "--data", str(tmp_path / "clear"), "--methods", "hazy,dcp",
                 "--csv", str(out)])
    assert code == 0
    rows = list(csv.DictReader(open(out)))
    per_image = [r for r in rows if r["image"] != "MEAN"]
    assert len(per_image) == 2 * 2 * 2                           # families x methods x photos
    assert {r["family"] for r in rows} == {"ramp", "fog"} and {r["image"] for r in per_image} == {"a", "b"}
    for fam in ("ramp", "fog"):                                  # the MEAN row is the mean of its images
        for m in ("hazy", "dcp"):
            vals = [float(r["psnr"]) for r in per_image if r["family"] == fam and r["method"] == m]
            mean = next(float(r["psnr"]) for r in rows if r["image"] == "MEAN" and r["family"] == fam
                        and r["method"] == m)
            assert mean == pytest.approx(sum(vals) / len(vals), abs=1e-3)
    photo = tmp_path / "clear" / "a.png"
    before = photo.read_bytes()
    for flag in ("--csv", "--markdown"):                         # a report may not replace an input photo
        assert main(["eval", "--families", "ramp", "--data", str(tmp_path / "clear"), "--methods", "hazy",
                     flag, str(photo)]) == 2
        assert photo.read_bytes() == before

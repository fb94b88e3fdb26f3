"""Sales experiments as configs: strict keys, and a saved run's manifest refits the same model."""

from __future__ import annotations

import numpy as np
import pytest

from fashionlens.manifest import read_manifest
from fashionlens.sales.run import SalesCompareConfig, SalesFitConfig, compare_sales, fit_sales
from tests.sales.test_data import write_visuelle


def test_unknown_sales_options_are_refused_naming_them():
    with pytest.raises(ValueError, match=r"run\.yaml: unknown SalesFitConfig key\(s\) feature .*known: .*features"):
        SalesFitConfig.from_dict({"feature": "color"}, "run.yaml")
    with pytest.raises(ValueError, match="unknown SalesCompareConfig key"):
        SalesCompareConfig.from_dict({"features": "color"})


def test_a_saved_run_records_what_refits_it_exactly(tmp_path):
    data = write_visuelle(tmp_path / "vis")
    cfg = SalesFitConfig(catalog=str(data), target="total", features="color,category", model="ridge",
                         test_where=["season=SS19,AW19"], params={"alpha": 3.0})
    res = fit_sales(cfg, tmp_path / "run")
    meta = read_manifest(tmp_path / "run", "sales")
    assert meta["task"] == "regression" and meta["n_test"] == res["n_test"] and meta["params"]["alpha"] == 3.0
    again = fit_sales(SalesFitConfig.from_dict(meta["config"]))  # from the manifest alone, no output folder
    np.testing.assert_allclose(again["predictions"], res["predictions"])
    assert again["rows"] == res["rows"]
    assert res["rows"][-1]["wape"] < res["rows"][0]["wape"]  # colour drives sales in the fixture: beats the mean


def test_compare_runs_from_its_config(tmp_path):
    data = write_visuelle(tmp_path / "vis")
    res = compare_sales(SalesCompareConfig(catalog=str(data), target="total", a="color", b="fabric", n_boot=200))
    assert res["a"] == "color" and res["b"] == "fabric" and res["diff"] < 0  # colour beats the constant fabric

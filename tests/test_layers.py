"""Every product module is under the import-linter contracts: a new top-level module of
``failover`` must be placed in a layer of ``.importlinter`` and in the "no product module imports
the lab" contract, or lint-imports would silently not check it."""

from __future__ import annotations

import configparser
import pkgutil
from pathlib import Path

import failover

REPO = Path(__file__).resolve().parents[1]


def test_every_top_level_module_is_in_the_contracts() -> None:
    config = configparser.ConfigParser()
    config.read(REPO / ".importlinter", encoding="utf-8")
    layers = " ".join(config["importlinter:contract:layers"]["layers"].replace(":", " ").split())
    product = config["importlinter:contract:product-without-lab"]["source_modules"].split()
    modules = {f"failover.{m.name}" for m in pkgutil.iter_modules(failover.__path__)} - {"failover._data"}
    missing_layer = {m for m in modules if m not in layers.split()}
    assert not missing_layer, f"place these in a layer of .importlinter: {sorted(missing_layer)}"
    missing_product = modules - set(product) - {"failover.lab"}
    assert not missing_product, f"add these to the product-without-lab contract: {sorted(missing_product)}"

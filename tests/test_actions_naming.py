"""Restore names are deterministic and valid Kubernetes names: a retry finds the same object."""

from __future__ import annotations

import re

from failover.actions import common

DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def test_names_are_deterministic_and_valid() -> None:
    a = common.k8s_name("restore", "run-0042", "g3")
    assert a == common.k8s_name("restore", "run-0042", "g3") == "restore-run-0042-g3"
    assert common.k8s_name("restore", "run-0042", "g4") != a
    long = common.k8s_name("restore", "x" * 80, "g1")
    assert len(long) <= 63 and DNS1123.match(long)
    assert long == common.k8s_name("restore", "x" * 80, "g1")
    assert long != common.k8s_name("restore", "x" * 80, "g2")
    assert DNS1123.match(common.k8s_name("Final", "Run_7/ä"))

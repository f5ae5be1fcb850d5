"""Package data that lives outside the package: the repository's top-level ``config/`` and
``playbooks/`` ship inside the wheel as ``failover._data.config`` and ``failover._data.playbooks``
(read with :mod:`importlib.resources`, see ``failover/resources.py``), so ``pip install .`` gives a
CLI that works from any directory while the repository keeps its layout. Everything else is in
pyproject.toml; this file only adds the mapped packages to the ones setuptools finds there.
"""

from setuptools import setup
from setuptools.dist import Distribution

#: package name -> directory in the repository
DATA_PACKAGES = {
    "failover._data.config": "config",
    "failover._data.playbooks": "playbooks",
    "failover._data.drills": "drills",
}
DATA_FILES = {
    "failover._data.config": ["*.yaml", "workplaces/*.yaml"],
    "failover._data.playbooks": ["*.yaml"],  # not playbooks/_test: those are the tests' own
    "failover._data.drills": ["*.yaml"],
}


class _WithDataPackages(Distribution):
    def run_commands(self) -> None:
        self.packages = [*(self.packages or []), *(p for p in DATA_PACKAGES if p not in (self.packages or []))]
        self.package_dir = {**(self.package_dir or {}), **DATA_PACKAGES}
        self.package_data = {**(self.package_data or {}), **DATA_FILES}
        super().run_commands()


setup(distclass=_WithDataPackages)

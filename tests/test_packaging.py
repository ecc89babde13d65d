"""`pip install .` ships every module of the package."""

import pathlib

from setuptools import find_packages


def test_setup_finds_every_subpackage():
    found = set(find_packages(include=["tfdgm", "tfdgm.*"]))
    folders = {path.parent for path in pathlib.Path("tfdgm").rglob("*.py")
               if "__pycache__" not in path.parts}
    expected = {".".join(folder.parts) for folder in folders}
    assert expected <= found, f"folders without __init__.py are left out: {expected - found}"

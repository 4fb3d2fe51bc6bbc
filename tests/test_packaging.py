"""What a user sees of the packages before running anything: metadata and the public namespace."""

import tomllib

from vmtools import ROOT

import runtime


def test_the_license_is_an_spdx_expression() -> None:
    # The table form ({ text = "MIT" }) is deprecated by setuptools, and builds using it stop working
    # after 2027-02-18.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == "MIT"


def test_the_public_names_of_runtime_are_its_all() -> None:
    # A user exploring with dir() or completion sees the API, not the imports it is built from.
    public = {attr for attr in dir(runtime) if not attr.startswith("_")}
    assert public == set(runtime.__all__)

"""Fixtures for the report tests: the synthetic study results and a report rendered from them."""

from __future__ import annotations

import pytest
from report_fixture import build_results

from retain.report import render_report


@pytest.fixture()
def results() -> dict:
    return build_results()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict:
    """The fixture study rendered once per module: written paths plus the markdown and HTML text."""
    out = tmp_path_factory.mktemp("report")
    paths = render_report(build_results(), out)
    return {"paths": paths, "out": out, "md": paths["markdown"].read_text("utf-8"),
            "html": paths["html"].read_text("utf-8")}

"""Offline Data Docs: a real GX site (pandas, no warehouse) served from local assets and rendered by
headless chromium with the network cut off. Needs ``make install`` (npm ci of
expectations/data_docs_assets) and Debian's chromium."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from trebol.quality.data_docs import DEFAULT_ASSETS, external_urls, localize

from ..browser import rendered_dom, screenshot

os.environ["GX_ANALYTICS_ENABLED"] = "False"  # before great_expectations is first imported
SUITE = "trebol_docs_suite"


def _build_site(root: Path) -> Path:
    """Validate a small DataFrame (one expectation passes, one fails) and build the Data Docs."""
    import great_expectations as gx

    site = root / "data_docs"
    context = gx.get_context(mode="ephemeral")
    context.add_data_docs_site(
        site_name="test_site",
        site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        },
    )
    batch = (context.data_sources.add_pandas("frames").add_dataframe_asset("customers")
             .add_batch_definition_whole_dataframe("all"))
    suite = context.suites.add(gx.ExpectationSuite(name=SUITE))
    suite.add_expectation(gx.expectations.ExpectColumnValuesToNotBeNull(column="customer_id"))
    suite.add_expectation(gx.expectations.ExpectColumnValuesToBeBetween(column="points", min_value=0,
                                                                        max_value=100))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name="validate_customers", data=batch, suite=suite))
    frame = pd.DataFrame({"customer_id": [1, 2, 3, 4], "points": [10, 50, 250, 80]})
    result = definition.run(batch_parameters={"dataframe": frame})
    assert not result.success  # the points range fails on purpose
    context.build_data_docs()
    return site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_site(tmp_path_factory.mktemp("gx"))


def _site_text(site: Path) -> dict[Path, str]:
    return {p: p.read_text(encoding="utf-8") for p in sorted(site.rglob("*.html"))}


def test_missing_assets_leaves_site_untouched(site: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(site, copy)
    before = _site_text(copy)
    left = localize(copy, tmp_path / "no_assets")
    assert _site_text(copy) == before
    assert "https://code.jquery.com/jquery-3.7.1.min.js" in left
    assert any("amazonaws.com" in url for url in left)


def test_localized_site_renders_offline(site: Path, tmp_path: Path) -> None:
    assert (DEFAULT_ASSETS / "node_modules").is_dir(), \
        f"{DEFAULT_ASSETS}/node_modules missing: run `make install` (needs npm)"
    assert localize(site) == []
    after = _site_text(site)
    assert localize(site) == [] and _site_text(site) == after  # idempotent
    for page, text in after.items():
        assert external_urls(text) == [], page
        # Only plain links (<a href>, GX docs and newsletter) may still point outside.
        assert not re.findall(r"https?://", re.sub(r"<a\b[^>]*>", "", text)), page
    assert (site / "static/vendor/@fortawesome/fontawesome-free/webfonts/fa-solid-900.woff2").is_file()

    index = site / "index.html"
    validation = next(site.glob("validations/**/*.html"))
    dom = rendered_dom(index)
    # bootstrap-table drew the validation table from its JS data: the suite is in a rendered cell.
    assert re.search(rf"<tr[^>]*data-index=\"0\"[^>]*>.*?<td[^>]*>[^<]*{SUITE}", dom, re.S), \
        "bootstrap-table did not render the validation table"

    from PIL import Image

    for page in (index, validation):
        png = tmp_path / f"{page.stem}.png"
        screenshot(page, png, width=1024, height=768)
        with Image.open(png) as image:
            rgb = image.convert("RGB")
            assert rgb.size == (1024, 768)
            colours = rgb.getcolors(maxcolors=1 << 20) or []
            non_white = sum(n for n, c in colours if c != (255, 255, 255))
        assert len(colours) > 50, f"{png} looks blank ({len(colours)} colours)"
        assert non_white > 0.02 * 1024 * 768, f"{png} is mostly white"

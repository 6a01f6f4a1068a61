"""Offline Great Expectations Data Docs: local web assets instead of CDNs.

GX 1.24 Data Docs pages load bootstrap, jQuery, bootstrap-table, font-awesome, vega… from CDNs and a
logo from S3, so air-gapped they open unstyled and the index's validation table (drawn by
bootstrap-table from JS data) stays empty. ``localize`` copies the same versions, installed by npm
into ``expectations/data_docs_assets/node_modules`` (``make install``), into the site's
``static/vendor/`` and points every page at them with relative paths (the tests open the result
in a headless browser: ``tests/browser.py``).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import quote

DEFAULT_ASSETS = Path(__file__).resolve().parents[3] / "expectations" / "data_docs_assets"
VENDOR = Path("static") / "vendor"
LOGO = Path("static") / "images" / "logo-long.png"

# CDN URL in the GX templates -> file in node_modules (see expectations/data_docs_assets/package.json).
CDN_FILES: dict[str, str] = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "bootstrap/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "bootstrap/dist/js/bootstrap.min.js",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "popper.js/dist/umd/popper.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table/dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table-1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table-1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker/dist/js/bootstrap-datepicker.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "@fortawesome/fontawesome-free/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "@forevolve/bootstrap-dark/dist/css/bootstrap-prefers-dark.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed/build/vega-embed.min.js",
}
# The GX logos (and the tracking pixel ``logo-long.png?d=…&dataContextId=…``) on S3.
_S3_LOGO = re.compile(r"https?://great-expectations-web-assets\.s3[\w.-]*\.amazonaws\.com/[^\"'\s)<>]*")
# What a page loads: src/href/srcset of resource tags, CSS url() and @import. Plain <a href> links
# (GX docs, newsletter) load nothing and are not counted.
_RESOURCE_TAG = re.compile(r"<(?:script|link|img|source|iframe|embed|video|audio|object|input)\b[^>]*>", re.I)
_RESOURCE_ATTR = re.compile(r"\b(?:src|href|srcset|data)\s*=\s*([\"'])\s*((?:https?:)?//[^\"'\s]+)", re.I)
_CSS_URL = re.compile(r"""(?:url\(\s*|@import\s+)["']?((?:https?:)?//[^"')\s;]+)""", re.I)
_LOCAL_TAG = re.compile(r"<(?:script|link)\b[^>]*static/vendor/[^>]*>", re.I)
_SRI_ATTR = re.compile(r"\s+(?:integrity|crossorigin)(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>]+))?", re.I)
_CSS_LOCAL_REF = re.compile(r"""url\(\s*["']?(?!data:|[a-z]+://|/|#)([^"')?#\s]+)""", re.I)


def _pages(docs_dir: Path) -> list[Path]:
    """The site's HTML pages and stylesheets (vendored files excluded)."""
    vendor = docs_dir / VENDOR
    return sorted(p for p in docs_dir.rglob("*") if p.suffix in (".html", ".css") and p.is_file()
                  and vendor not in p.parents)


def external_urls(text: str) -> list[str]:
    """The external URLs a page or stylesheet loads, in order of appearance, without repeats."""
    found = [m.group(2) for tag in _RESOURCE_TAG.finditer(text) for m in _RESOURCE_ATTR.finditer(tag.group())]
    found += _CSS_URL.findall(text)
    return list(dict.fromkeys(found))


def _site_external_urls(docs_dir: Path) -> list[str]:
    urls: dict[str, None] = {}
    for page in _pages(docs_dir):
        urls.update(dict.fromkeys(external_urls(page.read_text(encoding="utf-8", errors="replace"))))
    return sorted(urls)


def _copy_with_css_refs(modules: Path, rel: str, dest_root: Path) -> None:
    """Copy node_modules/<rel> to dest_root/<rel>, with the sibling files a stylesheet's url()s name."""
    src, dest = modules / rel, dest_root / rel
    dest.parent.mkdir(parents=True, exist_ok=True)
    if not dest.exists() or dest.stat().st_size != src.stat().st_size:
        shutil.copy2(src, dest)
    if src.suffix != ".css":
        return
    for ref in dict.fromkeys(_CSS_LOCAL_REF.findall(src.read_text(encoding="utf-8", errors="replace"))):
        ref_rel = os.path.normpath(os.path.join(os.path.dirname(rel), ref))
        if not ref_rel.startswith("..") and (modules / ref_rel).is_file():
            _copy_with_css_refs(modules, ref_rel, dest_root)


def _relative(target: Path, page: Path) -> str:
    """``target`` as a URL relative to the folder of ``page``."""
    return quote(Path(os.path.relpath(target, page.parent)).as_posix(), safe="/@")


def localize(docs_dir: Path, assets_dir: Path = DEFAULT_ASSETS) -> list[str]:
    """Serve a Data Docs site's CDN assets from ``docs_dir/static/vendor``; return the external URLs left.

    Copies the files the pages use from ``assets_dir/node_modules`` and rewrites every known CDN URL
    (and the S3 logo, to GX's own ``static/images/logo-long.png``) to a path relative to each page.
    Idempotent. Without ``assets_dir/node_modules`` the site is left as is and all its external URLs
    are returned.
    """
    docs_dir = Path(docs_dir)
    modules = Path(assets_dir) / "node_modules"
    if not modules.is_dir():
        return _site_external_urls(docs_dir)
    available = {url: rel for url, rel in CDN_FILES.items() if (modules / rel).is_file()}
    # Longest first, so no URL is rewritten through a shorter one that prefixes it.
    ordered = sorted(available, key=len, reverse=True)
    logo = docs_dir / LOGO
    copied: set[str] = set()
    for page in _pages(docs_dir):
        text = page.read_text(encoding="utf-8")
        new = text
        for url in ordered:
            if url in new:
                rel = available[url]
                if rel not in copied:
                    _copy_with_css_refs(modules, rel, docs_dir / VENDOR)
                    copied.add(rel)
                new = re.sub(re.escape(url) + r"(?![\w.@/-])", _relative(docs_dir / VENDOR / rel, page), new)
        if logo.is_file():
            new = _S3_LOGO.sub(_relative(logo, page), new)
        # Subresource integrity with crossorigin="anonymous" blocks file:// scripts: drop it on local tags.
        new = _LOCAL_TAG.sub(lambda m: _SRI_ATTR.sub("", m.group()), new)
        if new != text:
            page.write_text(new, encoding="utf-8")
    return _site_external_urls(docs_dir)

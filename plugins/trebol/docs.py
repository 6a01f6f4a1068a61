"""``trebol docs``: the warehouse's documentation where BI users look, as one static folder.

- ``dbt/index.html``: dbt's docs site (``dbt docs generate --static``: one file holding the
  manifest and the catalog, so it opens from disk): every model, seed and column with its
  description, the lineage, the BI dashboards (exposures) and their owners, the tables' columns
  and types as the warehouse has them. Built with the project's profile (``trebol.dbt_cli``) as
  the checks' role, which reads every layer and writes nothing, for the newest as-of date the
  marts hold (the compiled SQL shows that date).
- ``data_docs/``: a copy of the newest run's Great Expectations Data Docs (the checks' results).
- ``index.html``: a page linking both.

The folder is ``TREBOL_REPORTS_DIR/docs`` unless told; the run summary links it when present.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import tempfile
from datetime import date, datetime
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg

from trebol.dbt_cli import dbt_command
from trebol.quality.gx_project import data_docs_dir
from trebol.redaction import redact
from trebol.settings import Settings
from trebol.warehouse.catalog import relation_exists

DOCS_FOLDER = "docs"
SERVE_HOST = "127.0.0.1"


class DocsError(RuntimeError):
    """The docs cannot be built; the message is one line saying why."""


def docs_dir(reports_dir: Path) -> Path:
    """Where ``trebol docs`` writes the site by default."""
    return reports_dir / DOCS_FOLDER


def newest_as_of_date(conn: psycopg.Connection) -> date | None:
    """The newest as-of date the marts hold (customer_segments'), or None before any build."""
    if not relation_exists(conn, "marts.customer_segments"):
        return None
    return conn.execute("select max(as_of_date) from marts.customer_segments").fetchone()[0]


def newest_data_docs(reports_dir: Path) -> tuple[date, Path] | None:
    """The newest run's Data Docs folder (``<reports>/<YYYY-MM-DD>/data_docs``), with its date."""
    runs = sorted((folder.name, folder) for folder in reports_dir.glob("*-*-*")
                  if re.fullmatch(r"\d{4}-\d{2}-\d{2}", folder.name)
                  and (data_docs_dir(folder) / "index.html").is_file())
    if not runs:
        return None
    name, folder = runs[-1]
    return date.fromisoformat(name), data_docs_dir(folder)


def _failure(output: str) -> str:
    """dbt's first error line (its log lines start with a time), redacted."""
    lines = [re.sub(r"^\S*\d\d:\d\d:\d\d\s+", "", line).strip() for line in output.splitlines()]
    errors = [line for line in lines if "error" in line.lower()]
    return redact((errors or [line for line in lines if line] or ["no output"])[0])


def generate_dbt_docs(settings: Settings, dsn: str, as_of_date: date, target: Path) -> None:
    """``dbt docs generate --static`` against ``dsn`` as of ``as_of_date``: the single-file site
    written to ``target``; a failure is a one-line DocsError."""
    as_of_at = datetime(as_of_date.year, as_of_date.month, as_of_date.day,
                        tzinfo=ZoneInfo(settings.timezone))
    with tempfile.TemporaryDirectory(prefix="trebol-docs-") as work:
        command, env = dbt_command(settings.dbt_project_dir, dsn, as_of_at, "docs", "generate",
                                   "--static", work_dir=Path(work))
        env["TREBOL_TIMEZONE"] = settings.timezone
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        site = Path(work) / "target" / "static_index.html"
        if done.returncode != 0 or not site.is_file():
            raise DocsError(f"dbt docs generate failed: {_failure(done.stdout + done.stderr)}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(site, target)


def _index_page(as_of_date: date, data_docs: tuple[date, Path] | None) -> str:
    quality = ('<li><a href="data_docs/index.html">Data quality</a>: the Great Expectations Data '
               f"Docs of the run as of {data_docs[0].isoformat()}, every check and its result.</li>"
               if data_docs else
               "<li>Data quality: no run's Data Docs yet (each nightly run writes them).</li>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Trébol warehouse documentation</title>
<style>body {{font-family: sans-serif; max-width: 46em; margin: 2em auto; line-height: 1.5}}
code {{background: #f3f3f3; padding: 0 .2em}}</style></head>
<body><h1>Trébol warehouse documentation</h1>
<p>As of {html.escape(as_of_date.isoformat())}.</p>
<ul>
<li><a href="dbt/index.html">Models and columns</a>: the dbt docs of the warehouse. Schema
<code>marts</code> holds the business tables, <code>reference</code> the lookups to join them
with; the BI dashboards and their owners are its exposures.</li>
{quality}
</ul>
<p>Connect a BI tool: <code>trebol warehouse url --role bi</code> prints the URL (role
<code>bi_reader</code>: no names, emails, phones, postal codes or source ids);
<code>trebol warehouse users add NAME --role bi</code> makes a login of your own.</p>
</body></html>
"""


def build_docs(settings: Settings, dsn: str, out: Path) -> Path:
    """Write the site into ``out`` (dbt docs, a copy of the newest Data Docs, an index page)
    against ``dsn``; the index page's path."""
    with psycopg.connect(dsn, connect_timeout=10) as conn:
        as_of_date = newest_as_of_date(conn)
    if as_of_date is None:
        raise DocsError("the warehouse holds no marts yet: run the pipeline first "
                        "(`trebol demo` or `trebol run --date D`)")
    generate_dbt_docs(settings, dsn, as_of_date, out / "dbt" / "index.html")
    data_docs = newest_data_docs(settings.reports_dir)
    if data_docs is not None:
        shutil.rmtree(out / "data_docs", ignore_errors=True)
        shutil.copytree(data_docs[1], out / "data_docs")
    index = out / "index.html"
    index.write_text(_index_page(as_of_date, data_docs), encoding="utf-8")
    return index


def serve(folder: Path, port: int) -> ThreadingHTTPServer:
    """An HTTP server of ``folder`` on 127.0.0.1 (call ``serve_forever``); the loopback only."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(folder))
    return ThreadingHTTPServer((SERVE_HOST, port), handler)

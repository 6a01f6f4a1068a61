"""``simulate``: generate (or reuse) the four source systems, Mailchimp's consent feedback and the
ground truth for one spec.

Owns, under ``out_dir``: ``ecom/``, ``loyalty/``, ``crm/``, ``mailchimp/``, ``ground_truth/`` and
``manifest.json`` (anything else there is left alone); in ``campaigns/events/``, a folder a real
campaign tool's export may hold, only the files the demo's campaign tool listed as its own
(``trebol.demo.campaign_tool``); and the schema ``pos`` of the database at ``pos_dsn``. The
manifest is written last, in both places, so an interrupted run is never mistaken
for a finished one.

It only ever replaces what it created: folders under ``out_dir`` without its manifest, or a
``pos`` schema without its mark, make it refuse with one line before anything is written.
Without ``pos_dsn`` the POS data is generated (the ground truth needs it) but loaded nowhere.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from trebol.demo import crm as crm_system
from trebol.demo import ecom as ecom_system
from trebol.demo import loyalty as loyalty_system
from trebol.demo import mailchimp as mailchimp_system
from trebol.demo import pos as pos_system
from trebol.demo.behaviour import make_sales, present_cards
from trebol.demo.campaign_tool import forget_written_events
from trebol.demo.clock import Clock
from trebol.demo.faults import FaultLog
from trebol.demo.ground_truth import write_identities, write_people
from trebol.demo.people import make_people
from trebol.demo.reference import STORES, make_catalogue
from trebol.demo.spec import GENERATOR_VERSION, SimulationResult, SimulationSpec, SimulatorRefused

OWN_FOLDERS = ("ecom", "loyalty", "crm", "mailchimp", "ground_truth")
MANIFEST = "manifest.json"


def _identity(spec: SimulationSpec) -> dict[str, Any]:
    return {"generator": GENERATOR_VERSION, "spec": spec.to_json()}


class NotTheSimulatorsFolder(SimulatorRefused):
    """``out_dir`` holds source folders the simulator did not write; nothing changed."""


def check_owned_folders(out_dir: Path) -> None:
    """Refuse (one line) when ``out_dir`` holds one of the simulator's folders but not its
    manifest: those are someone else's exports."""
    if (out_dir / MANIFEST).exists():
        return
    foreign = [sub for sub in OWN_FOLDERS if (out_dir / sub).exists()]
    if foreign:
        raise NotTheSimulatorsFolder(
            f"{out_dir} holds {', '.join(f'{sub}/' for sub in foreign)} but no {MANIFEST}: not the "
            "demo simulator's data, left as it is; give the demo a folder of its own")


def _reusable(spec: SimulationSpec, out_dir: Path, pos_dsn: str | None) -> dict[str, Any] | None:
    path = out_dir / MANIFEST
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    identity = _identity(spec)
    if any(manifest.get(k) != v for k, v in identity.items()):
        return None
    if pos_dsn is not None and pos_system.read_manifest(pos_dsn) != identity:
        return None
    if not all((out_dir / sub).is_dir() for sub in OWN_FOLDERS):
        return None
    return manifest


def simulate(spec: SimulationSpec, out_dir: Path, pos_dsn: str | None,
             progress: Callable[[str], None] | None = None) -> SimulationResult:
    """Generate the sources for ``spec`` (POS into ``pos_dsn`` unless None, files into
    ``out_dir``), or reuse them; refuse before writing anything the simulator did not create."""
    out_dir = Path(out_dir)
    say = progress or (lambda _message: None)
    manifest = _reusable(spec, out_dir, pos_dsn)
    if manifest is not None:
        return SimulationResult(out_dir, dict(manifest["counts"]), int(manifest["faults"]), reused=True)
    check_owned_folders(out_dir)
    if pos_dsn is not None:
        pos_system.check_pos_owned(pos_dsn)

    (out_dir / MANIFEST).unlink(missing_ok=True)
    for sub in OWN_FOLDERS:
        shutil.rmtree(out_dir / sub, ignore_errors=True)
    forget_written_events(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    clock = Clock(spec.start_date, spec.days, spec.timezone)
    catalogue = make_catalogue()
    people = make_people(spec.customers, spec.rng("people"))
    sales = make_sales(people, catalogue, clock, spec.rng("sales"), spec.correction_rate)
    loyalty = loyalty_system.enrol(people, sales, clock, spec.rng("enrol"))
    present_cards(sales, loyalty.enrol_ts, spec.rng("cards"))
    say(f"simulated {people.n:,} people and {sales.size:,} purchase occasions "
        f"({spec.start_date.isoformat()} to {clock.day_names[spec.days - 1]})")

    log = FaultLog()
    counts: dict[str, int] = {}
    card_of = {i: loyalty.card_of_person[int(sales.person[i])] for i in np.flatnonzero(sales.card).tolist()}
    pos = pos_system.build_pos(sales, catalogue, card_of, clock, spec.rng("pos"), spec.fault_rate, log)
    counts.update(pos_stores=len(STORES), pos_products=catalogue.size, pos_tickets=len(pos.tickets),
                  pos_ticket_lines=len(pos.lines))

    ecom = ecom_system.make_accounts(people, sales, spec.rng("accounts"))
    counts["ecom_orders"] = ecom_system.write_orders(out_dir, people, sales, ecom, catalogue, clock,
                                                     spec.rng("ecom"), spec.fault_rate, log)
    say(f"wrote e-commerce orders: {counts['ecom_orders']:,} order versions")

    members, ledger = loyalty_system.build_loyalty(people, sales, pos, ecom, loyalty, clock,
                                                   spec.rng("loyalty"))
    counts.update(loyalty_system.write_loyalty(out_dir, members, ledger, clock, spec.rng("loyalty-files"),
                                               spec.fault_rate, log))
    say(f"wrote loyalty: {counts['loyalty_members']:,} member rows, {counts['loyalty_points']:,} ledger rows")

    crm = crm_system.build_contacts(people, sales, clock, spec.rng("crm"))
    counts["crm_contacts"] = crm_system.write_contacts(out_dir, crm, clock, spec.rng("crm-contacts"),
                                                       spec.fault_rate, log,
                                                       spec.crm_snapshot_retention_days)
    counts["crm_cases"] = crm_system.write_cases(out_dir, people, sales, crm, clock, spec.rng("crm-cases"),
                                                 spec.fault_rate, log)
    say(f"wrote CRM: {counts['crm_contacts']:,} snapshot rows, {counts['crm_cases']:,} case rows")
    counts["mailchimp_opt_outs"] = mailchimp_system.write_opt_outs(out_dir, people, crm, clock,
                                                                   spec.rng("mailchimp"))

    truth = out_dir / "ground_truth"
    write_people(truth / "people.csv", people, sales, pos, loyalty, crm, clock)
    write_identities(truth / "identities.csv", people, loyalty, ecom, crm)
    log.write(truth / "faults.csv")

    identity = _identity(spec)
    if pos_dsn is not None:
        pos_system.load_pos(pos_dsn, pos, identity)
        say(f"loaded POS: {counts['pos_tickets']:,} tickets, {counts['pos_ticket_lines']:,} lines")
    manifest = {**identity, "counts": counts, "faults": len(log)}
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return SimulationResult(out_dir, counts, len(log), reused=False)

"""Mailchimp's consent feedback, as the nightly task ``pull_consent_feedback`` would have pulled it:
a few people who consent in the CRM unsubscribe in the campaign tool instead (or their address
bounces: cleaned), so the demo shows consent taken away by a source other than the CRM.

Written as the task writes it (``trebol.activation.consent_feedback``): for each of the last
``EXPORT_DAYS`` days (the destination connected then), ``mailchimp/opt_outs/<DESTINATION>/<day>.jsonl``
with every opt-out of the list by that day's end, sorted by address, Mailchimp's times in UTC.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from trebol.activation.consent_feedback import OPT_OUTS_FOLDER
from trebol.demo.behaviour import HOUR
from trebol.demo.clock import Clock
from trebol.demo.crm import Crm
from trebol.demo.people import People
from trebol.demo.reference import PLACEHOLDER_EMAIL

DESTINATION = "demo_newsletter"  # the Mailchimp destination the files stand for
LIST_ID = "4ca5becb8d"
OPT_OUT_SHARE = 0.02  # of the people consenting in the CRM at the end
CLEANED_SHARE = 0.25  # of the opt-outs: a bounced address rather than an unsubscribe
UPPER_CASE_SHARE = 0.2  # addresses Mailchimp holds in another case than the CRM
EXPORT_DAYS = 14


def write_opt_outs(out_dir: Path, people: People, crm: Crm, clock: Clock,
                   rng: np.random.Generator) -> int:
    """Pick the people who opt out in Mailchimp and write the daily exports; lines written."""
    opt_outs: list[tuple[int, dict[str, str]]] = []
    for person, contact in sorted(crm.primary.items()):
        email = crm.states[contact][-1][1][2]
        consents = crm.consent_at_end.get(person, False) and person not in crm.unsubscribed_ts
        draws = rng.random(5)  # drawn for every contact: the choices do not shift one another
        if not consents or email in ("", PLACEHOLDER_EMAIL) or draws[0] >= OPT_OUT_SHARE:
            continue
        created_day = int(clock.local_day(np.array([crm.created_ts[contact]]))[0])
        day = created_day + 1 + int(draws[1] * max(clock.days - 1 - created_day, 0))
        if day >= clock.days:
            continue
        at = int(clock.at(np.array([day]), np.array([8 * HOUR + draws[2] * 14 * HOUR]))[0])
        address = people.email[person]
        opt_outs.append((at, {
            "email_address": address.upper() if draws[3] < UPPER_CASE_SHARE else address,
            "last_changed": datetime.fromtimestamp(at, UTC).isoformat(),
            "list_id": LIST_ID,
            "status": "cleaned" if draws[4] < CLEANED_SHARE else "unsubscribed"}))
    folder = out_dir / OPT_OUTS_FOLDER / DESTINATION
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for day in range(max(clock.days - EXPORT_DAYS, 0), clock.days):
        rows = sorted((row for at, row in opt_outs if at < clock.day_start[day + 1]),
                      key=lambda row: row["email_address"].lower())
        lines = "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows)
        (folder / f"{clock.day_names[day]}.jsonl").write_text(lines, encoding="utf-8")
        written += len(rows)
    return written

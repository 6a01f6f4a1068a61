"""The simulated people: who they are, where they live, their households, consent and channel habits,
and the latent parameters of their buying behaviour (the ground truth the pipeline's models estimate).

Buying follows a heterogeneous repeat-purchase process with dropout (BG/NBD style): a purchase rate
per day ``lambda ~ Gamma(r, alpha)``, a probability ``p ~ Beta(a, b)`` of dropping out after each
purchase, and a spend level per person drawn Gamma-Gamma style. On top: one-off buyers, heavy returners and
discount hunters (the unprofitable customers).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trebol.demo.reference import (
    EMAIL_DOMAIN_WEIGHTS,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    LAST_NAMES,
    STORES,
    ascii_fold,
)

CHANNELS = ("store_only", "online_only", "both")
CHANNEL_WEIGHTS = (0.5, 0.2, 0.3)
SHARED_EMAIL_SHARE = 0.03
CONSENT_SHARE = 0.70
MEMBER_SHARE = 0.55
CRM_SHARE = 0.80
ONE_OFF_SHARE = 0.20
HEAVY_RETURNER_SHARE = 0.05
DISCOUNT_HUNTER_SHARE = 0.05
# purchase rate per day ~ Gamma(shape, scale); dropout ~ Beta(a, b); spend: Gamma-Gamma
RATE_SHAPE, RATE_SCALE = 0.9, 0.045
DROPOUT_A, DROPOUT_B = 1.1, 9.0
SPEND_SHAPE, SPEND_Q, SPEND_GAMMA = 6.0, 3.5, 18.75


@dataclass
class People:
    """One entry per person, as parallel lists and arrays (index = person number - 1)."""

    person_id: list[str]
    first_name: list[str]
    last_name: list[str]  # two surnames, Spanish style
    email: list[str]
    phone: list[str]  # national 9 digits
    postal_code: list[str]
    home_store: np.ndarray
    shares_email_with: np.ndarray  # the other person of the household, or -1
    channel: np.ndarray  # index into CHANNELS
    online_share: np.ndarray  # probability that a purchase is online
    consent: np.ndarray
    member: np.ndarray
    crm: np.ndarray
    purchase_rate: np.ndarray  # purchases per day while active
    dropout_probability: np.ndarray
    one_off: np.ndarray
    mean_spend: np.ndarray  # euros per occasion
    heavy_returner: np.ndarray
    discount_hunter: np.ndarray

    @property
    def n(self) -> int:
        return len(self.person_id)


def _local_part(first: str, last: str, number: int, style: int) -> str:
    f = ascii_fold(first).lower().replace(" ", "")
    last_word = ascii_fold(last).lower().replace(" ", "")
    match style:
        case 0:
            return f"{f}.{last_word}{number}"
        case 1:
            return f"{f[0]}{last_word}{number}"
        case 2:
            return f"{f}_{last_word}{number}"
        case _:
            return f"{last_word}.{f}{number}"


def make_people(n: int, rng: np.random.Generator) -> People:
    """Draw ``n`` people with their identities and latent behaviour."""
    first = rng.integers(0, len(FIRST_NAMES), n)
    last1 = rng.integers(0, len(LAST_NAMES), n)
    last2 = rng.integers(0, len(LAST_NAMES), n)
    weights = np.array([s.weight for s in STORES])
    store = rng.choice(len(STORES), n, p=weights / weights.sum())
    low = np.array([s.postal_low for s in STORES])[store]
    high = np.array([s.postal_high for s in STORES])[store]
    postal = low + (rng.random(n) * (high - low + 1)).astype(np.int64)
    subscriber = rng.choice(10**8, n, replace=False)
    lead = np.where(rng.random(n) < 0.8, 6, 7)
    number = rng.permutation(n) + 1
    style = rng.integers(0, 4, n)
    domain = rng.choice(len(EMAIL_DOMAINS), n, p=EMAIL_DOMAIN_WEIGHTS)

    first_name = [FIRST_NAMES[i] for i in first.tolist()]
    surnames = [LAST_NAMES[i] for i in last1.tolist()]
    last_name = [f"{a} {LAST_NAMES[b]}" for a, b in zip(surnames, last2.tolist(), strict=True)]
    email = [f"{_local_part(f, s, k, st)}@{EMAIL_DOMAINS[d]}" for f, s, k, st, d in
             zip(first_name, surnames, number.tolist(), style.tolist(), domain.tolist(), strict=True)]
    postal_code = [f"{p:05d}" for p in postal.tolist()]
    shares = np.full(n, -1, dtype=np.int64)
    pairs = rng.permutation(n)[: 2 * round(n * SHARED_EMAIL_SHARE / 2)].reshape(-1, 2)
    for a, b in pairs.tolist():  # a household: same email, same address, same first surname
        shares[a], shares[b] = b, a
        email[b] = email[a]
        postal_code[b] = postal_code[a]
        store[b] = store[a]
        last_name[b] = last_name[a].split(" ")[0] + " " + last_name[b].split(" ", 1)[1]

    channel = rng.choice(3, n, p=CHANNEL_WEIGHTS)
    online_share = np.select([channel == 0, channel == 1], [0.0, 1.0], rng.uniform(0.2, 0.6, n))
    one_off = rng.random(n) < ONE_OFF_SHARE
    dropout = np.where(one_off, 1.0, rng.beta(DROPOUT_A, DROPOUT_B, n))
    nu = rng.gamma(SPEND_Q, 1.0 / SPEND_GAMMA, n)
    kind = rng.random(n)
    return People(
        person_id=[f"U{i + 1:07d}" for i in range(n)],
        first_name=first_name,
        last_name=last_name,
        email=email,
        phone=[f"{a}{s:08d}" for a, s in zip(lead.tolist(), subscriber.tolist(), strict=True)],
        postal_code=postal_code,
        home_store=store,
        shares_email_with=shares,
        channel=channel,
        online_share=online_share,
        consent=rng.random(n) < CONSENT_SHARE,
        member=rng.random(n) < MEMBER_SHARE,
        crm=rng.random(n) < CRM_SHARE,
        purchase_rate=rng.gamma(RATE_SHAPE, RATE_SCALE, n),
        dropout_probability=dropout,
        one_off=one_off,
        mean_spend=SPEND_SHAPE / nu,
        heavy_returner=kind < HEAVY_RETURNER_SHARE,
        discount_hunter=(kind >= HEAVY_RETURNER_SHARE)
        & (kind < HEAVY_RETURNER_SHARE + DISCOUNT_HUNTER_SHARE),
    )

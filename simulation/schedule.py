"""When customers meet the bank: inbound visits at daily rates, and a weekly e-mail campaign.

The schedule depends on the seed and the customers only, never on the policy: every policy of a run
meets the same customers at the same moments (common random numbers), so their figures differ by what
they decide, not by who turned up.

- Visits: per customer and day, Poisson counts per channel; rates rise with the `digital` need online
  and fall with it in the call centre (about 0.12 visits a customer a day in all). Each visit falls in an
  hour of the day; the service decides all of an hour's visits at that hour's clock.
- Campaign: every 7 days from day 1, at 09:00, an e-mail decision for a random 40% of the customers
  who gave marketing consent.

>>> import numpy as np
>>> visits = day_visits(np.zeros(4), seed=0, day=0)
>>> sorted(set(visits.channel.tolist())) <= [0, 1, 2]
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

START = 1_798_761_600.0  # 2027-01-01T00:00:00Z: the simulated clock's day 0
INBOUND = ("web", "mobile", "call_centre")
CAMPAIGN_CHANNEL, CAMPAIGN_EVERY, CAMPAIGN_FIRST_DAY, CAMPAIGN_HOUR, CAMPAIGN_SHARE = "email", 7, 1, 9, 0.4


@dataclass(frozen=True)
class Visits:
    """One day's inbound visits, ordered by hour then customer: parallel arrays."""

    hour: np.ndarray
    customer: np.ndarray
    channel: np.ndarray  # index into INBOUND


def rates(digital: np.ndarray) -> np.ndarray:
    """Visits per customer per day, (customers, len(INBOUND))."""
    return np.stack(
        [0.05 * np.exp(0.4 * digital), 0.035 * np.exp(0.9 * digital), 0.012 * np.exp(-0.4 * digital)], axis=1
    )


def day_visits(digital: np.ndarray, seed: int, day: int) -> Visits:
    """The inbound visits of `day` (0-based), the same for the same seed whatever the policy."""
    rng = np.random.default_rng([seed, 2, day])
    counts = rng.poisson(rates(digital))  # (customers, channels)
    customer, channel = np.nonzero(counts)
    repeat = counts[customer, channel]
    customer, channel = np.repeat(customer, repeat), np.repeat(channel, repeat)
    hour = rng.integers(0, 24, len(customer))
    order = np.lexsort((channel, customer, hour))
    return Visits(hour[order], customer[order], channel[order])


def campaign_customers(consent: np.ndarray, seed: int, day: int) -> np.ndarray | None:
    """The customers the campaign of `day` writes to (row indices), or None when there is no campaign."""
    if day < CAMPAIGN_FIRST_DAY or (day - CAMPAIGN_FIRST_DAY) % CAMPAIGN_EVERY:
        return None
    rng = np.random.default_rng([seed, 3, day])
    return np.flatnonzero(consent & (rng.random(len(consent)) < CAMPAIGN_SHARE))

"""The request mix of `make bench`: what a bank's callers send, as pre-encoded requests.

- web page views (`web`/`mobile`, one offer per placement): most of the traffic;
- call-centre desktops: the top five with explanations;
- responses (clicked / declined / ignored) keyed by customer and offer, and customer events.
The same seeded list feeds the open-loop client and wrk (through `mix.lua`, one request per line), so
every server sees the same requests in the same order. The scoring-only baseline gets the decisions only.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import orjson

from loadtests.openloop import Request, encode

# Shares of the mix, by kind; decisions are 85% of the requests.
SHARES = (("web_view", 0.70), ("call_centre", 0.15), ("response", 0.10), ("event", 0.05))
PATHS = {"decision": "/v1/decisions", "response": "/v1/responses", "event": "/v1/events"}
PAGES = ("mortgage_calculator", "cards", "savings", "home")
LUA = Path(__file__).with_name("mix.lua")


def bodies(count: int, customers: int, offer_ids: Sequence[str], seed: int = 7) -> list[tuple[str, dict]]:
    """`count` (kind, body) pairs of the mix, drawn with a fixed seed. Kinds: decision, response, event."""
    rng = random.Random(seed)
    names, weights = zip(*SHARES, strict=True)
    return [_body(rng.choices(names, weights)[0], f"c-{rng.randint(1, customers):06d}", offer_ids, rng)
            for _ in range(count)]  # fmt: skip


def _body(name: str, customer: str, offer_ids: Sequence[str], rng: random.Random) -> tuple[str, dict]:
    if name == "web_view":
        channel = rng.choice(("web", "web", "mobile"))
        return "decision", {"customer_id": customer, "channel": channel, "placement": "home_hero", "max_offers": 1}
    if name == "call_centre":
        return "decision", {"customer_id": customer, "channel": "call_centre", "max_offers": 5, "explain": True}
    if name == "response":
        outcome = rng.choice(("clicked", "declined", "ignored"))
        return "response", {"customer_id": customer, "offer_id": rng.choice(offer_ids), "channel": "web",
                            "outcome": outcome}  # fmt: skip
    return "event", {"customer_id": customer, "type": "visited_page", "attributes": {"page": rng.choice(PAGES)}}


def requests(mix: Sequence[tuple[str, dict]], headers: dict[str, str], decisions_only: bool = False) -> list[Request]:
    """The mix as pre-encoded HTTP/1.1 requests (only its decisions for a scoring-only server)."""
    return [Request(kind, encode("POST", PATHS[kind], orjson.dumps(body), headers))
            for kind, body in mix if kind == "decision" or not decisions_only]  # fmt: skip


def write_wrk_file(path: Path, mix: Sequence[tuple[str, dict]], decisions_only: bool = False) -> Path:
    """The requests for `mix.lua`: one `path<TAB>json body` line each."""
    lines = [f"{PATHS[kind]}\t{orjson.dumps(body).decode()}" for kind, body in mix
             if kind == "decision" or not decisions_only]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path

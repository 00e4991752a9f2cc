"""The embedded default's request path reads its SQLite history on the plain `sqlite3` readers, never through
SQLAlchemy and aiosqlite (history/sqlite_reader.py): decisions, retries, responses, listings."""

from __future__ import annotations

import httpx
import sqlalchemy as sa

from history import SqlHistory

WEB = {"customer_id": "c-adult", "channel": "web", "placement": "home_hero"}


async def test_requests_read_the_history_without_the_sqlalchemy_engine(start):
    app, client = await start()
    history = app.state.service.history
    assert isinstance(history, SqlHistory)
    sent: list[str] = []
    sa.event.listen(history.engine.sync_engine, "before_cursor_execute", lambda *args: sent.append(args[2]))

    first = await decide(client, {**WEB, "request_id": "page-1", "max_offers": 2})
    again = await decide(client, {**WEB, "request_id": "page-1", "max_offers": 2})
    offer_id = first["offers"][0]["offer_id"]
    by_decision = {"customer_id": "c-adult", "offer_id": offer_id, "channel": "web", "outcome": "clicked",
                   "decision_id": first["decision_id"]}  # fmt: skip
    latest = {"customer_id": "c-adult", "offer_id": offer_id, "channel": "web", "outcome": "declined"}
    answers = [(await client.post("/v1/responses", json=body)).json() for body in (by_decision, latest)]
    listed = (await client.get("/v1/customers/c-adult/history")).json()["entries"]
    fresh = await decide(client, {**WEB, "customer_id": "c-never-seen"})  # its summary is rebuilt from SQL

    assert again["replayed"] is True and again["decision_id"] == first["decision_id"]
    assert [a["decision_id"] for a in answers] == [first["decision_id"]] * 2
    assert {"clicked", "declined", "presented"} <= {e["outcome"] for e in listed} and fresh["decision_id"]
    assert sent == []


async def decide(client: httpx.AsyncClient, body: dict) -> dict:
    answer = await client.post("/v1/decisions", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()

"""Checks of a command against the catalogue: names the schema cannot know (channels, offers)."""

from __future__ import annotations

from decisioning.catalogue import Catalogue, Offer
from service.errors import InvalidInput


def check_channel(catalogue: Catalogue, channel: str, field: str) -> None:
    """Raise `InvalidInput` for a channel the catalogue does not declare."""
    if channel not in catalogue.channels:
        raise InvalidInput(field, f"unknown channel '{channel}'; one of: {', '.join(catalogue.channels)}")


def known_offer(catalogue: Catalogue, offer_id: str, field: str) -> Offer:
    """The catalogue's offer, or `InvalidInput` naming the field."""
    offer = catalogue.offer(offer_id)
    if offer is None:
        raise InvalidInput(field, f"unknown offer '{offer_id}'")
    return offer

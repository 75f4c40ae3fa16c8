"""Where the weather comes from: named locations with coordinates."""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,40}$")


@dataclass(frozen=True)
class Location:
    name: str
    latitude: float
    longitude: float

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"location name {self.name!r}: lowercase letters, digits and -")
        if not -90 <= self.latitude <= 90 or not -180 <= self.longitude <= 180:
            raise ValueError(f"location {self.name}: coordinates out of range")


DEFAULT_LOCATIONS: tuple[Location, ...] = (
    Location("berlin", 52.52, 13.41),
    Location("madrid", 40.42, -3.70),
    Location("oslo", 59.91, 10.75),
    Location("singapore", 1.29, 103.85),
)
"""The sample data's locations (and the default set to fetch)."""


def parse_locations(spec: str | None) -> tuple[Location, ...]:
    """`berlin,oslo` picks from the defaults; `name:lat:lon` adds a location."""
    if not spec:
        return DEFAULT_LOCATIONS
    known = {loc.name: loc for loc in DEFAULT_LOCATIONS}
    out = []
    for item in (s.strip() for s in spec.split(",") if s.strip()):
        if ":" in item:
            name, lat, lon = item.split(":")
            out.append(Location(name, float(lat), float(lon)))
        elif item in known:
            out.append(known[item])
        else:
            raise ValueError(
                f"unknown location {item!r}; known: {', '.join(known)} (or give name:lat:lon)"
            )
    return tuple(out)

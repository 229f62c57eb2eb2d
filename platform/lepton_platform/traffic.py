"""Which revisions of a function take its traffic: shares that add up to 100, and tags that
give a revision an address of its own (`/fn/NAME@TAG`, or header `Lepton-Tag: TAG`).

`Traffic` is the rule, checked here and stored with the function; `Routes` applies it per
request. On one machine the platform picks a revision by weight; on Knative the Service's
route does, and `Routes` only resolves tags (`weighted=False`).
"""

from __future__ import annotations

import random
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lepton.errors import LeptonError

TAG = re.compile(r"^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$")  # a DNS label: Knative makes it part of a host name


class InvalidTraffic(LeptonError):
    """A traffic rule the platform refuses; routing stays as it was."""

    status = 422


@dataclass(frozen=True)
class Traffic:
    split: dict[str, int]  # revision id -> percent (> 0), adding up to 100
    tags: dict[str, str] = field(default_factory=dict)  # tag -> revision id

    @classmethod
    def single(cls, revision: str, tags: Mapping[str, str] | None = None) -> Traffic:
        return cls({revision: 100}, dict(tags or {}))

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None, fallback: str) -> Traffic:
        if not data:
            return cls.single(fallback)
        return cls({k: int(v) for k, v in data.get("split", {}).items()}, dict(data.get("tags", {})))

    def to_json(self) -> dict[str, Any]:
        return {"split": dict(self.split), "tags": dict(self.tags)}

    @property
    def main(self) -> str:
        """The revision with the largest share (the newest of equals): its spec answers for the
        function (who may call it, its triggers) and `lepton ls` shows it."""
        return max(self.split, key=lambda rev: (self.split[rev], rev))

    @property
    def simple(self) -> bool:
        """All traffic to one revision and no tags: nothing to pick per request."""
        return len(self.split) == 1 and not self.tags

    @property
    def revisions(self) -> list[str]:
        """Every revision that takes traffic or has a tag, main first."""
        main = self.main
        return [main, *sorted({*self.split, *self.tags.values()} - {main})]

    def tags_of(self, revision: str) -> list[str]:
        return sorted(tag for tag, rev in self.tags.items() if rev == revision)

    def with_canary(self, revision: str, percent: int, tag: str | None) -> Traffic:
        """A deploy of `revision` at `percent`: the revision that had the largest share keeps
        the rest, the others stop taking traffic (their tags stay)."""
        tags = {**self.tags, **({tag: revision} if tag else {})}
        if percent >= 100:
            return Traffic.single(revision, tags)
        if revision in self.split:  # already taking traffic (the same code deployed again): its share stays
            return Traffic(dict(self.split), tags)
        split = {self.main: 100 - percent, **({revision: percent} if percent else {})}
        return Traffic(split, tags)


def validate(function: str, split: Mapping[str, Any], tags: Mapping[str, str], ready: Iterable[str]) -> Traffic:
    """The rule, or InvalidTraffic naming what is wrong: shares are whole percents of ready
    revisions adding up to 100, tags are DNS labels naming ready revisions."""
    ready = set(ready)
    if not split:
        raise InvalidTraffic(f"function {function!r}: give at least one revision a share, e.g. {function}-00001=100")
    shares: dict[str, int] = {}
    for revision, percent in split.items():
        if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
            raise InvalidTraffic(f"function {function!r}: the share of {revision} must be a whole percent from 0 to 100, not {percent!r}")
        if revision not in ready:
            raise InvalidTraffic(f"function {function!r} has no ready revision {revision!r}; see `lepton revisions {function}`")
        if percent:
            shares[revision] = percent
    total = sum(shares.values())
    if total != 100:
        raise InvalidTraffic(
            f"function {function!r}: shares add up to {total}%, not 100% ({', '.join(f'{r}={p}' for r, p in split.items())})"
        )
    for tag, revision in tags.items():
        check_tag(function, tag)
        if revision not in ready:
            raise InvalidTraffic(
                f"function {function!r}: tag {tag!r} names {revision!r}, which is not a ready revision; see `lepton revisions {function}`"
            )
    return Traffic(shares, dict(tags))


def check_tag(function: str, tag: str) -> None:
    """InvalidTraffic unless `tag` can be a tag: a DNS label, since Knative makes it part of a host name."""
    if not TAG.match(tag):
        raise InvalidTraffic(
            f"function {function!r}: tag {tag!r} must be lowercase letters, digits and '-', starting with a letter, at most 32 characters"
        )


class Routes:
    """Per request: the serving revision for a tag, or one picked by weight."""

    def __init__(
        self, traffic: Traffic, fleets: Mapping[str, Any], *, tagged: Mapping[str, Any] | None = None, weighted: bool = True
    ) -> None:
        self.traffic = traffic
        self.fleets = dict(fleets)  # revision id -> what serves it (a Fleet, or a KnativeFleet)
        self.main = self.fleets[traffic.main]
        # tag -> what serves it: the revision's fleet, or (Knative) the tag's own address
        self._tags = dict(tagged) if tagged is not None else {tag: self.fleets[rev] for tag, rev in traffic.tags.items()}
        shares = [(rev, pct) for rev, pct in traffic.split.items()] if weighted else [(traffic.main, 100)]
        self._order = [self.fleets[rev] for rev, _ in shares]
        self._bounds, total = [], 0
        for _, pct in shares:
            total += pct
            self._bounds.append(total)

    def all(self) -> list[Any]:
        """Everything that serves, each once."""
        return list({id(f): f for f in [*self.fleets.values(), *self._tags.values()]}.values())

    def pick(self, tag: str | None = None) -> Any:
        """None for a tag the function does not have."""
        if tag is not None:
            return self._tags.get(tag)
        if len(self._order) == 1:
            return self.main
        return self._order[min(bisect_right(self._bounds, random.random() * 100), len(self._order) - 1)]

"""``Handover``: merging two persons on a Redis Cluster, where their keys live in different slots.

A person's keys are tagged by the person (``store.persons.redis``), so the source and the target of a
``$identify`` / ``$create_alias`` are (almost always) on different slots, often on different shards, and no
one script can touch both. The merge is three scripts (``store.persons.lua``), each atomic on one slot:

1. ``DETACH`` on the source's slot: renames the source's hash and dedupe set to a **stash** (``M{...}`` and
   ``N{...}``, the source's own hash tag) and leaves in their place ``@`` -> target and ``~`` -> a fresh
   merge id, answering the stash's content. From here every write and read of the source follows the
   redirect to the target, as after a single-Redis merge.
2. ``ABSORB`` on the target's slot: joins the stash's fields into the target as ``MERGE`` does (properties
   joined, counts added, uuids added to the dedupe set), **once per merge id**: the id is recorded as
   ``m<merge id>`` in the target's dedupe set (kept for the dedupe period), so a repeated step 2 adds
   nothing. A target that was itself merged meanwhile answers its own target, and step 2 goes there.
3. ``RELEASE`` on the source's slot: deletes the stash and ``~`` (only if ``~`` is still this merge id).

Then the project's seen set (its own slot) drops the source and lists the target (``SEEN``).

Failure cases (a crash, a timeout, a failover between steps; the batch then fails and the sender retries it):

- after step 1: the source redirects to the target, its data waits in the stash and ``~`` marks the merge
  unfinished. Whoever meets ``~`` finishes that merge with its recorded id (steps 2 and 3) before going on:
  a retried merge of the same source (or any later merge with it as source) in step 1 (``pending``), and a
  write to the source id (``WRITE`` answers the redirect as unfinished) before it writes to the target, so
  a retried event the source already counted finds its uuid at the target and counts once. Until then, reads
  through either id miss the source's pre-merge data (they never count it twice), and redirects are not
  cached.
- after step 2: whoever meets ``~`` repeats step 2 (a no-op: the merge id is recorded), then step 3.
- after step 3, before the seen set: ``seen_persons`` may list the source (its hash is only a redirect, so it
  is skipped) and list the target only from its next roll-up (at most 10 minutes of writes later). The seen
  set is advisory (a population sample), so this is the whole cost.

A merge that is not cut is in flight for two round trips between steps 1 and 3; a concurrent write to the
source finishes it as above (step 2 runs twice, once in effect), a concurrent read of either id may see the
target without the source's data. On a single Redis the merge is one script and neither can happen. The
recorded merge ids and the stash expire (dedupe period, person TTL), so a merge left unfinished for days
and only then finished may count the source's events twice.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import msgspec

from store.errors import StoreUnavailable
from store.persons import lua
from store.persons.protocol import StoreSettings
from store.persons.slots import text
from store.servers.connections import AnyRedis

__all__ = ["Handover"]

_encode = msgspec.json.Encoder().encode
_MAX_HOPS = 5
Keyed = Callable[[str, int, str], str]  # (kind, project, distinct id) -> key


def _texts(values: list[Any]) -> list[str]:
    return [text(v) for v in values]


class Handover:
    """Runs the cross-slot merge (see the module docstring); the caller translates Redis errors."""

    def __init__(
        self, client: AnyRedis, settings: StoreSettings, keyed: Keyed, seen: Callable[[int], str]
    ) -> None:
        self._settings = settings
        self._keyed = keyed
        self._seen = seen
        self._detach = client.register_script(lua.DETACH)
        self._absorb = client.register_script(lua.ABSORB)
        self._release = client.register_script(lua.RELEASE)
        self._seen_script = client.register_script(lua.SEEN)

    def _keys(self, project_id: int, distinct_id: str, kinds: str) -> list[str]:
        return [self._keyed(kind, project_id, distinct_id) for kind in kinds]

    async def merge(
        self, project_id: int, source: str, target: str, *, identify: bool, now: int
    ) -> tuple[str, str]:
        """One attempt, answering as ``MERGE`` does: ``("ok", "")``, ``("kept", "")``, or ``("a"|"b", id)``
        when the source/target was merged before (the caller resolves and retries)."""
        s = self._settings
        keys = self._keys(project_id, source, "PUMN")
        merge_id = secrets.token_hex(8)
        args: list[str | int] = [target, merge_id, s.person_ttl_seconds, int(identify)]
        result = await self._detach(keys=keys, args=args)
        status = text(result[0])
        if status == "a":
            return "a", text(result[1])
        if status == "kept":  # the target still becomes identified
            moved = await self._absorb_into(project_id, target, "", [], [], now, hops=1)
            return ("kept", "") if moved == target else ("b", moved)
        if status == "pending":  # an earlier merge of this source stopped half-way: finish it first
            pending_target, pending_id = _texts(result[1:3])
            await self._finish(project_id, source, pending_target, pending_id, result[3], result[4], now)
            return "a", pending_target
        await self._finish(project_id, source, target, merge_id, result[2], result[3], now)
        return "ok", ""

    async def _finish(
        self, project_id: int, source: str, target: str, merge_id: str, fields: Any, uuids: Any, now: int
    ) -> None:
        target = await self._absorb_into(
            project_id, target, merge_id, _texts(fields), _texts(uuids), now, hops=_MAX_HOPS
        )
        keys = self._keys(project_id, source, "PMN")
        await self._release(keys=keys, args=[merge_id])
        ttl = self._settings.person_ttl_seconds
        await self._seen_script(keys=[self._seen(project_id)], args=[now, ttl, source, target])

    async def _absorb_into(
        self,
        project_id: int,
        target: str,
        merge_id: str,
        fields: list[str],
        uuids: list[str],
        now: int,
        *,
        hops: int,
    ) -> str:
        """Step 2 on ``target``, following its redirects up to ``hops`` times; answers the id that took it
        (or, with ``hops`` spent, the id the last target redirected to)."""
        s = self._settings
        arg = _encode(
            [now, s.person_ttl_seconds, s.dedupe_seconds, s.max_person_properties, merge_id, fields, uuids]
        )
        for _ in range(hops):
            keys = self._keys(project_id, target, "PU")
            result = await self._absorb(keys=keys, args=[arg])
            if text(result[0]) == "ok":
                return target
            target = text(result[1])
        if hops > 1:
            raise StoreUnavailable("person merge: too many merged-id redirects")
        return target

"""A forget that reaches the fleet collection: rows deleted, the collection compacted, and the
request audited in the audit log of the node (or CLI) that asked.

Selected as the local forget selects (:class:`~engram_ros.core.governance.EngramFilter`:
kinds, tags, a region, a time window, tier, pinned; ids; both narrow each other) plus
``robot``: every row a robot wrote. History rows are selected too: forgetting is for good.

What a merge made from a forgotten row goes with it: a fleet engram
(:mod:`engram_ros.core.fleet.consolidate`) whose provenance names a forgotten row is forgotten
too (``derived_ids``), and its members that were not asked for become current beliefs again
(``reopened_ids``: the merge is undone for them), so a robot's forgotten sightings do not live
on inside a merged engram.

Milvus deletes rows by marking them; they stay in segments until compaction, so every forget
flushes and asks for one (:meth:`MilvusBackend.compact`). A Milvus server compacts in the
background; milvus-lite 3.x accepts the request and does nothing more (it compacts on its own
after flushes, once enough data files accumulate), so on a milvus-lite file the deleted rows
stay in its data files, hidden by tombstones, until then: a forget that must leave no bytes on
disk needs a server (or a copy of the collection without them). A forget with nothing selected
still compacts, as the local forget purges anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from dataclasses import field
from typing import Sequence

import numpy as np

from engram_ros.core.audit import AuditLog
from engram_ros.core.audit import id_summary
from engram_ros.core.backend import Region
from engram_ros.core.backend import Stage1Filter
from engram_ros.core.backends.milvus import MilvusBackend
from engram_ros.core.fleet.ids import fleet_id
from engram_ros.core.fleet.ids import FLEET_OWNER
from engram_ros.core.fleet.ids import MAX_LOCAL_ID
from engram_ros.core.fleet.provenance import Provenance
from engram_ros.core.governance import EngramFilter
from engram_ros.core.governance import ForgetResult
from engram_ros.core.governance import GovernanceError
from engram_ros.core.governance import GovernanceStatus
from engram_ros.core.model.engram import TIER_SHORT

_LOG = logging.getLogger(__name__)

#: The audit action of a fleet forget.
AUDIT_ACTION = 'fleet_forget'


@dataclass
class FleetForgetResult:
    """What a fleet forget removed (or, dry, would remove): the rows asked for
    (``forgotten_ids``), the fleet engrams merged from them (``derived_ids``), the members of
    those that are current again (``reopened_ids``), ids not in the collection
    (``unknown_ids``), and the compaction job asked for (``compaction_job``, 0: none given)."""

    forgotten_ids: list[int] = field(default_factory=list)
    derived_ids: list[int] = field(default_factory=list)
    reopened_ids: list[int] = field(default_factory=list)
    unknown_ids: list[int] = field(default_factory=list)
    compaction_job: int = 0
    dry_run: bool = False

    @property
    def status(self) -> GovernanceStatus:
        return GovernanceStatus.UNKNOWN_ID if self.unknown_ids else GovernanceStatus.OK

    @property
    def message(self) -> str:
        verb = 'would forget' if self.dry_run else 'forgot'
        text = (f'{verb} {len(self.forgotten_ids)} fleet engrams and '
                f'{len(self.derived_ids)} merged from them; {len(self.reopened_ids)} '
                f'merged members current again')
        if self.unknown_ids:
            text += (f'; unknown id(s) {", ".join(map(str, self.unknown_ids[:20]))}'
                     f'{" ..." if len(self.unknown_ids) > 20 else ""}: not in the collection')
        return text


def fleet_forget(backend: MilvusBackend, audit: AuditLog | None, *, ids: Sequence[int] = (),
                 robot: str = '', selection: EngramFilter | None = None,
                 dry_run: bool = False, requester: str = 'unknown',
                 provenance: Provenance | None = None) -> FleetForgetResult:
    """Forget rows of the fleet collection for good, compact it, and audit the request in
    ``audit`` (the asking node's log; ``None`` only for a caller that audits it itself).

    :param ids: engram ids (unknown ones are reported, the known ones forgotten).
    :param robot: every row this robot wrote (``''``: no robot condition).
    :param selection: as a local forget's filter, in the collection's frame.
    :param provenance: the merge records (opened on ``backend``'s URI when ``None``; pass one
        for a server that needs a token).
    :raises GovernanceError: for a malformed filter or id, or nothing selected (audited).
    """
    params: dict = {'uri': backend.uri, 'collection': backend.collection,
                    'ids': [int(i) for i in ids][:1000], 'robot': robot, 'dry_run': dry_run}
    records = provenance if provenance is not None else Provenance(backend.uri,
                                                                   backend.collection)
    try:
        result = _forget(backend, records, ids, robot, selection, dry_run)
    except GovernanceError as exc:
        if audit is not None:
            audit.record(AUDIT_ACTION, requester, params, {'status': int(exc.status)})
        raise
    finally:
        if provenance is None:
            records.close()
    if selection is not None and audit is not None:
        params.update(selection.summary())
        for name in ('tags_all', 'tags_any', 'tags_none'):
            if getattr(selection, name):
                params[name] = audit.digests(getattr(selection, name))
    if audit is not None:
        audit.record(AUDIT_ACTION, requester, params,
                     dict(id_summary(result.forgotten_ids),
                          derived=result.derived_ids[:1000],
                          reopened=result.reopened_ids[:1000],
                          unknown=result.unknown_ids[:1000],
                          compaction_job=result.compaction_job))
    return result


def _forget(backend: MilvusBackend, records: Provenance, ids: Sequence[int], robot: str,
            selection: EngramFilter | None, dry_run: bool) -> FleetForgetResult:
    bad = [i for i in ids if not isinstance(i, (int, np.integer)) or int(i) <= 0]
    if bad:
        raise GovernanceError(GovernanceStatus.UNKNOWN_ID,
                              f'invalid id(s) {bad[:10]}; ids are integers >= 1')
    if selection is not None:
        selection = selection.normalized(backend.frame_id)
    has_filter = selection is not None and not selection.is_empty()
    if not ids and not robot and not has_filter:
        raise GovernanceError(GovernanceStatus.EMPTY_SELECTION,
                              'nothing selected: give ids, a robot, tags, kinds, a region, a '
                              'time window, a tier or pinned; to erase the whole fleet memory '
                              'drop its collection')
    chosen: set[int] | None = None
    unknown: list[int] = []
    if ids:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        present = set(backend.robots_of(wanted))
        chosen = {i for i in wanted if i in present}
        unknown = [i for i in wanted if i not in present]
    if robot:
        mine = set(backend.ids_of_robot(robot).tolist())
        chosen = mine if chosen is None else chosen & mine
    if has_filter:
        assert selection is not None
        picked = set(_select(backend, selection))
        chosen = picked if chosen is None else chosen & picked
    forgotten = sorted(chosen or ())
    derived, dropped, reopen = _derived(backend, records, forgotten)
    result = FleetForgetResult(forgotten, sorted(derived), sorted(reopen), unknown,
                               dry_run=dry_run)
    if dry_run:
        return result
    gone = sorted(set(forgotten) | derived)
    if reopen:
        _reopen(backend, sorted(reopen), dropped)
    backend.delete(gone)
    records.delete(sorted(dropped))
    result.compaction_job = backend.compact()
    _LOG.info('fleet forget: %s', result.message)
    return result


def _select(backend: MilvusBackend, selection: EngramFilter) -> list[int]:
    """Ids (history included) a normalized filter picks."""
    region = None
    if selection.radius > 0.0 and selection.center is not None:
        c = np.asarray(selection.center, dtype=np.float64).reshape(-1)
        region = Region((c[0], c[1], c[2]), selection.radius, selection.frame_id)
    where = Stage1Filter(kinds=selection.kinds, tags_all=selection.tags_all,
                         tags_any=selection.tags_any, tags_none=selection.tags_none,
                         region=region, t_start=selection.t_start, t_end=selection.t_end,
                         include_history=True)
    ids = backend.select(where).tolist()
    if selection.tier or selection.pinned is not None:
        ids = [e.id for e in backend.get(ids)
               if (not selection.tier or (e.tier == TIER_SHORT) == (selection.tier == TIER_SHORT))
               and (selection.pinned is None or e.pinned == selection.pinned)]
    return sorted(ids)


def _derived(backend: MilvusBackend, records: Provenance, forgotten: list[int]
             ) -> tuple[set[int], set[int], set[int]]:
    """Fleet engrams merged from ``forgotten`` rows (forgotten with them), every fleet engram
    that goes (those and the forgotten ones), and their members that stay (current again)."""
    gone = set(forgotten)
    merged_from = {e.successor_id for e in backend.get(forgotten) if e.successor_id}
    owners = backend.robots_of(sorted(merged_from | gone))
    fleet = {i for i in merged_from | gone if owners.get(i) == FLEET_OWNER}
    known = records.get(sorted(fleet))
    derived = {i for i in merged_from if i in known and i not in gone}
    dropped = derived | {i for i in gone if i in fleet}
    reopen: set[int] = set()
    for merged in dropped:
        record = known.get(merged) or {'members': []}
        reopen |= {int(m) for m, _ in record['members'] if int(m) not in gone}
    return derived, dropped, reopen


def _reopen(backend: MilvusBackend, ids: list[int], fleet_ids: set[int]) -> None:
    """The members of forgotten fleet engrams become current again (their own robots kept)."""
    robots = backend.robots_of(ids)
    engrams = [e for e in backend.get(ids) if e.successor_id in fleet_ids]
    for e in engrams:
        e.valid_to, e.successor_id = None, 0
    backend.put(engrams, robots=robots)


@dataclass
class ForgetHereAndInFleet:
    """A forget on a robot that also reaches the fleet (:func:`forget_here_and_in_fleet`)."""

    local: ForgetResult
    #: The fleet's part (``None`` when it was not done: see :attr:`fleet_missing`).
    fleet: FleetForgetResult | None = None
    #: Why the fleet's part was not done (``''``: it was, or nothing in the fleet was named).
    fleet_missing: str = ''


def forget_here_and_in_fleet(store, link, ids: Sequence[int] = (),
                             selection: EngramFilter | None = None, *, dry_run: bool = False,
                             requester: str = 'unknown') -> ForgetHereAndInFleet:
    """Forget on this robot and in the fleet collection, both audited in ``store``'s log.

    Ids below ``2 ** 48`` are this robot's engrams (forgotten here; their own fleet rows go at
    once, not only at the next sync); larger ids are fleet ids (another robot's sighting or a
    fleet-merged engram, as a fleet-scoped Recall answers them), forgotten in the fleet only. A
    filter selects here and in the fleet (every robot's rows). With ids given, each part
    forgets only its own ids (narrowed by the filter).

    :param store: this robot's :class:`~engram_ros.core.memory.store.MemoryStore`.
    :param link: the robot's :class:`~engram_ros.core.fleet.link.FleetLink` (``None``: no
        fleet configured; the local part is still done and :attr:`fleet_missing` says why).
    :raises GovernanceError: as the local forget does (nothing is forgotten anywhere then).
    """
    local_ids = [int(i) for i in ids if int(i) <= MAX_LOCAL_ID]
    fleet_only = [int(i) for i in ids if int(i) > MAX_LOCAL_ID]
    has_filter = selection is not None and not selection.is_empty()
    if local_ids or (not ids and has_filter) or not (fleet_only or has_filter):
        local = store.forget(local_ids, selection, dry_run=dry_run, requester=requester)
    else:
        local = ForgetResult(dry_run=dry_run)
    out = ForgetHereAndInFleet(local)
    backend = None if link is None else link.backend()
    if backend is None:
        out.fleet_missing = ('no fleet configured (fleet.uri)' if link is None
                             else f'fleet {link.status()}')
        return out
    # With ids: the fleet ids asked for, and this robot's own rows of what it forgot here;
    # by a filter alone: whatever it picks in the fleet, every robot's rows (own ones included).
    own = [fleet_id(link.robot_index, i) for i in local.forgotten_ids if i <= MAX_LOCAL_ID]
    if ids and not (fleet_only or own):
        return out                      # only this robot's unknown ids: nothing in the fleet
    try:
        out.fleet = fleet_forget(backend, store.audit, ids=fleet_only + own if ids else (),
                                 selection=selection, dry_run=dry_run, requester=requester)
    except GovernanceError:
        raise
    except Exception as exc:            # the fleet went away mid-request (pymilvus' own errors)
        out.fleet_missing = f'fleet forget failed: {exc}'
        return out
    # Own rows not yet synced are not unknown to the asker; fleet ids missing are.
    out.fleet.unknown_ids = [i for i in out.fleet.unknown_ids if i in set(fleet_only)]
    return out

"""What the memory node reports on ``/diagnostics``: its counters, and the summary line and
level an operator reads first; and whose status it is.

``/diagnostics`` is one absolute topic for the whole robot (or fleet): each status names the
node that publishes it by its fully qualified name (``/robot1/engram_memory: memory``, hardware
id ``/robot1/engram_memory``), so two robots' memories never collide there."""

from __future__ import annotations

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus

from engram_ros.core.audit import AuditLog
from engram_ros.core.memory import MemoryStore
from engram_ros.ros.conversions.common import diagnostic_array

#: The memory node's counters, reported as diagnostics values in this order.
MEMORY_COUNTERS = ('received', 'lost', 'ingested', 'merged', 'promoted', 'dropped_malformed',
                   'evicted', 'recalls', 'recall_errors', 'consolidations', 'dropped_privacy',
                   'lists', 'gets', 'edits', 'forgets', 'forgotten', 'fleet_forgets_missed',
                   'evidence_expired',
                   'governance_errors', 'feedbacks', 'feedback_errors', 'corrections',
                   'corrections_rejected', 'moved', 'ended', 'place_queries',
                   # refused past a size limit (engram_ros.core.model.limits), per reason
                   'dropped_label_too_long', 'dropped_too_many_tags', 'dropped_tag_too_long',
                   # storage faults: errors of any operation, observations the write queue
                   # refused when full, written after a retry, dropped on another error
                   'storage_errors', 'dropped_queue_full', 'written_late', 'dropped_error',
                   'internal_errors',
                   # refused unread: over the per-publisher rate limit, over the size limit
                   'refused_rate', 'dropped_oversize',
                   # recalls that wanted other robots' memories but were answered locally
                   # (no fleet, or it did not answer: Recall.srv FLEET_*)
                   'recalls_fleet_unanswered')
#: Counters of observations refused by the memory (WARN once any is non-zero).
DROP_COUNTERS = ('dropped_malformed', 'dropped_label_too_long', 'dropped_too_many_tags',
                 'dropped_tag_too_long', 'dropped_queue_full', 'dropped_error', 'refused_rate',
                 'dropped_oversize')


def for_node(array: DiagnosticArray, node_fqn: str) -> DiagnosticArray:
    """``array`` with every status's hardware id the node's fully qualified name."""
    for status in array.status:
        status.hardware_id = node_fqn
    return array


def index_cache_state(store: MemoryStore) -> str:
    """The ``index_cache`` value of :func:`memory_diagnostics` for ``store``."""
    if store.index_from_cache:
        return 'loaded'
    if store.index_cache_rejected:
        return f'rejected: {store.index_cache_problem}'
    return 'rebuilt'


def memory_diagnostics(stamp: Time, node_fqn: str, counters: dict[str, int], size: int,
                       short_term: int, last_recall_ms: float, semantic_state: str,
                       audit: AuditLog | None = None, write_queue: int = 0,
                       storage_failing: str = '', publishers: int = 0,
                       loss_counting: bool = True,
                       graph_pending: bool = False,
                       index_cache: str = 'loaded',
                       fleet: dict[str, str] | None = None) -> DiagnosticArray:
    """The memory's status, named after ``node_fqn`` (``/robot1/engram_memory``): ERROR while
    storage fails (``storage_failing`` says how) or when the audit log was found cut or missing
    files at start (``audit_gaps`` > 0: a gap record now says so; ``engram verify`` shows it);
    WARN once observations were dropped or lost in transport (``lost``: publishers' sequence
    gaps, :mod:`engram_ros.ros.publisher_loss`) or storage failed before; else OK.
    ``loss_counting`` false: the RMW numbers no messages, so ``lost`` cannot be counted.
    ``index_graph``: ``pending`` while the index graph is built after a crash reopen (recall
    answers, exactly, slower at scale; :mod:`engram_ros.core.memory.lifecycle`), else ``ready``.
    ``index_cache``: how this start got its index: ``loaded`` (the cache a clean close saved),
    ``rebuilt`` (none, e.g. after a crash), ``rejected: <why>`` (a cache was there but corrupt,
    stale or of another format, so the index was rebuilt from storage).
    ``fleet``: the fleet sync's status (:meth:`~engram_ros.core.fleet.sync.FleetSync.status`):
    key ``fleet`` is ``off`` (no ``fleet.uri``), ``connecting``, ``connected``,
    ``unreachable: <why>`` or ``refused: <why>`` (WARN: the robot runs on its own memory),
    and ``fleet.<counter>`` its counters.

    Values from the audit log: ``audit_gaps`` (problems found at this start),
    ``audit_gaps_logged`` (gap records the log holds in all), ``audit_keyed``.
    """
    dropped = sum(counters.get(name, 0) for name in DROP_COUNTERS)
    private = counters['dropped_privacy']
    lost = counters.get('lost', 0)
    problems = list(audit.gaps_found) if audit is not None else []
    message = (f'{size} engrams'
               + (f', {dropped} observations dropped' if dropped else '')
               + (f', {lost} observations lost before they were taken' if lost else '')
               + (f', {private} observations in privacy zones not stored' if private else '')
               + (f', {write_queue} observations wait for storage' if write_queue else '')
               + (', index graph being built (exact search meanwhile)' if graph_pending
                  else '')
               + (f'; {storage_failing}' if storage_failing else ''))
    fleet = fleet or {'fleet': 'off'}
    fleet_down = fleet['fleet'].startswith(('unreachable', 'refused'))
    if fleet_down:
        message += f'; fleet {fleet["fleet"]}'
    if problems:
        message = f'audit log damaged: {problems[0]}; ' + message
    values = dict(counters, engrams=size, short_term=short_term,
                  last_recall_ms=round(last_recall_ms, 3), semantic_text=semantic_state,
                  write_queue=write_queue, publishers=publishers,
                  loss_counting=str(loss_counting).lower(),
                  index_graph='pending' if graph_pending else 'ready',
                  index_cache=index_cache, **fleet)
    if audit is not None:
        values.update(audit_gaps=len(problems), audit_gaps_logged=audit.gaps,
                      audit_keyed=str(audit.keyed).lower())
    array = diagnostic_array(stamp, f'{node_fqn}: memory', message, values.items(),
                             warn=bool(dropped or lost or counters.get('storage_errors', 0)
                                       or fleet_down))
    if problems or storage_failing:
        array.status[0].level = DiagnosticStatus.ERROR
    return for_node(array, node_fqn)

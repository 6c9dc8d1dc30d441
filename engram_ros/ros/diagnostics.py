"""What the memory node reports on ``/diagnostics``: its counters, and the summary line and
level an operator reads first; and whose status it is.

``/diagnostics`` is one absolute topic for the whole robot (or fleet): each status names the
node that publishes it by its fully qualified name (``/robot1/engram_memory: memory``, hardware
id ``/robot1/engram_memory``), so two robots' memories never collide there."""

from __future__ import annotations

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray

from engram_ros.ros.conversions.common import diagnostic_array

#: The memory node's counters, reported as diagnostics values in this order.
MEMORY_COUNTERS = ('received', 'ingested', 'merged', 'promoted', 'dropped_malformed', 'evicted',
                   'recalls', 'recall_errors', 'consolidations', 'dropped_privacy', 'lists',
                   'gets', 'edits', 'forgets', 'forgotten', 'evidence_expired',
                   'governance_errors', 'feedbacks', 'feedback_errors', 'corrections',
                   'corrections_rejected', 'moved', 'ended', 'place_queries')


def for_node(array: DiagnosticArray, node_fqn: str) -> DiagnosticArray:
    """``array`` with every status's hardware id the node's fully qualified name."""
    for status in array.status:
        status.hardware_id = node_fqn
    return array


def memory_diagnostics(stamp: Time, node_fqn: str, counters: dict[str, int], size: int,
                       short_term: int, last_recall_ms: float,
                       semantic_state: str) -> DiagnosticArray:
    """The memory's status (named after ``node_fqn``, ``/robot1/engram_memory``): WARN once
    malformed observations were dropped, else OK."""
    dropped = counters['dropped_malformed']
    private = counters['dropped_privacy']
    message = (f'{size} engrams'
               + (f', {dropped} malformed observations dropped' if dropped else '')
               + (f', {private} observations in privacy zones not stored' if private else ''))
    values = dict(counters, engrams=size, short_term=short_term,
                  last_recall_ms=round(last_recall_ms, 3), semantic_text=semantic_state)
    return for_node(diagnostic_array(stamp, f'{node_fqn}: memory', message, values.items(),
                                     warn=bool(dropped)), node_fqn)

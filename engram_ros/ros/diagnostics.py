"""What the memory node reports on ``/diagnostics``: its counters, and the summary line and
level an operator reads first."""

from __future__ import annotations

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from diagnostic_msgs.msg import DiagnosticStatus

from engram_ros.core.audit import AuditLog
from engram_ros.ros.conversions.common import diagnostic_array

#: The memory node's counters, reported as diagnostics values in this order.
MEMORY_COUNTERS = ('received', 'ingested', 'merged', 'promoted', 'dropped_malformed', 'evicted',
                   'recalls', 'recall_errors', 'consolidations', 'dropped_privacy', 'lists',
                   'gets', 'edits', 'forgets', 'forgotten', 'evidence_expired',
                   'governance_errors', 'feedbacks', 'feedback_errors', 'corrections',
                   'corrections_rejected', 'moved', 'ended', 'place_queries')


def memory_diagnostics(stamp: Time, node_name: str, counters: dict[str, int], size: int,
                       short_term: int, last_recall_ms: float,
                       semantic_state: str, audit: AuditLog | None = None) -> DiagnosticArray:
    """The memory's status: ERROR when the audit log was found cut or missing files at start
    (``audit_gaps`` > 0: a gap record now says so; ``engram verify`` shows it), else WARN once
    malformed observations were dropped, else OK.

    Values from the audit log: ``audit_gaps`` (problems found at this start),
    ``audit_gaps_logged`` (gap records the log holds in all), ``audit_keyed``.
    """
    dropped = counters['dropped_malformed']
    private = counters['dropped_privacy']
    problems = list(audit.gaps_found) if audit is not None else []
    message = (f'{size} engrams'
               + (f', {dropped} malformed observations dropped' if dropped else '')
               + (f', {private} observations in privacy zones not stored' if private else ''))
    if problems:
        message = f'audit log damaged: {problems[0]}; ' + message
    values = dict(counters, engrams=size, short_term=short_term,
                  last_recall_ms=round(last_recall_ms, 3), semantic_text=semantic_state)
    if audit is not None:
        values.update(audit_gaps=len(problems), audit_gaps_logged=audit.gaps,
                      audit_keyed=str(audit.keyed).lower())
    array = diagnostic_array(stamp, f'{node_name}: memory', message, values.items(),
                             warn=bool(dropped))
    if problems:
        array.status[0].level = DiagnosticStatus.ERROR
    return array

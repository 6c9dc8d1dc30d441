"""The memory node's parameters: declared once here (names, defaults, descriptions), checked
by the same rules at start and when they change, mapped onto
:class:`~engram_ros.core.memory.StoreConfig` and the store they open, and applied to a running
store.

Plain functions over parameter values, so the mapping reads (and is tested) apart from the
node; ``config/engram.yaml`` mirrors the defaults.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any
from typing import Callable

from rclpy.parameter import Parameter

from engram_ros.core.audit import AUDIT_FILE_NAME
from engram_ros.core.audit import AuditLog
from engram_ros.core.audit import check_key
from engram_ros.core.evidence import EvidenceStore
from engram_ros.core.evidence import load_key
from engram_ros.core.fleet import view as fleet_view
from engram_ros.core.fleet.link import FleetLink
from engram_ros.core.fleet.sync import FleetSync
from engram_ros.core.fleet.sync import parse_share
from engram_ros.core.fleet.view import robot_id_from_namespace
from engram_ros.core.forgetting import RetentionPolicy
from engram_ros.core.keys import read_key_file
from engram_ros.core.memory import MemoryStore
from engram_ros.core.memory import META_AUDIT_HEAD
from engram_ros.core.memory import StoreConfig
from engram_ros.core.merge import MergePolicy
from engram_ros.core.model.engram import KINDS
from engram_ros.core.privacy import DEFAULT_RETENTION
from engram_ros.core.privacy import PrivacyPolicy
from engram_ros.core.storage import MemoryStorage
from engram_ros.core.storage import SQLiteStorage
from engram_ros.core.storage import SYNCHRONOUS_MODES
from engram_ros.core.visibility import MissPolicy
from engram_ros.ros.managed import AUTOSTART

#: Parameters that shape the store on disk: fixed once the node runs.
READ_ONLY = ('persist', 'store_dir', 'synchronous', 'frame_id', 'dim', 'ingest_topic',
             'privacy.zones', 'privacy.time_windows', 'encrypt_evidence', 'encryption_key_file',
             'semantic_text', 'audit_max_mb', 'audit_keep_files', 'audit_key_file',
             'write_queue_size', 'autostart', 'queue_depth', 'ingest_batch',
             'ingest_rate_limit', 'max_observation_bytes', 'fleet.uri', 'fleet.token',
             'fleet.collection', 'fleet.robot_id', 'fleet.encoder', 'fleet.sync_period',
             'fleet.share', 'fleet.backlog')
#: String arrays without a default (an empty list has no type in ROS): unset means none.
STRING_ARRAY = Parameter.Type.STRING_ARRAY

_POSITIVE_INTS = ('max_k', 'short_term_capacity', 'budget', 'promote_after', 'max_markers',
                  'write_queue_size', 'dim', 'queue_depth', 'ingest_batch',
                  'max_observation_bytes', 'fleet.backlog')
_NON_NEGATIVE_INTS = ('miss_visits', 'noise_support', 'audit_keep_files')
_NON_NEGATIVE = ('ingest_rate_limit', 'anchor_radius', 'edge_max_gap', 'move_grace',
                 'protect_score', 'miss_visit_gap', 'consolidation_period')
_POSITIVE = ('diagnostics_period', 'marker_period', 'audit_max_mb', 'fleet.sync_period')


class ParameterValueError(ValueError):
    """A start value the memory cannot run with; the message names the parameter, the value
    and what is accepted."""


def declarations() -> list[tuple[str, Any, str]]:
    """``(name, default or STRING_ARRAY, description)`` of every parameter, in declaration
    order; read-only when the name is in :data:`READ_ONLY`."""
    out: list[tuple[str, Any, str]] = [
        AUTOSTART,
        ('persist', False, 'consent to keep the memory on disk; false keeps it in RAM'),
        ('store_dir', '~/.ros/engram_store', 'store directory (SQLite, evidence, index)'),
        ('synchronous', 'NORMAL', 'SQLite synchronous: NORMAL keeps acknowledged writes '
         'through a process crash, FULL also through a power loss (one fsync per write)'),
        ('frame_id', 'map', 'memory frame: observations and queries must use it'),
        ('dim', 256, 'context vector dimension'),
        ('max_k', 100, 'largest k a Recall may ask for'),
        ('short_term_capacity', 10000, 'engrams in the short-term LRU tier'),
        ('budget', 1000000, 'most engrams kept; consolidation forgets past it'),
        ('promote_after', 2, 'observations before promotion to long-term'),
        ('noise_support', 3, 'forget a one-off sighting as label noise when a lookalike with '
         'another label and this many observations is at its place, once the robot looked '
         'there again (a view or visit, or the lookalike seen on a later visit); 0 disables')]
    out += [(f'merge_radius.{kind}', radius, f'[m] same-{kind} radius for merging')
            for kind, radius in MergePolicy().radius.items()]
    out += [(f'merge_similarity.{kind}', sim, f'min cosine to merge two {kind} engrams')
            for kind, sim in MergePolicy().min_similarity.items()]
    out += [
        ('consolidation_period', 30.0, '[s] background consolidation; 0 disables'),
        ('anchor_radius', 5.0, '[m] objects anchor to the nearest place within this'),
        ('edge_max_gap', 60.0, '[s] consecutive place observations within this make an edge '
         'of the place graph'),
        ('move_grace', 5.0, '[s] a thing unseen this long after the robot was at its place '
         'counts as missed (with a sighting elsewhere: it moved)'),
        ('miss_visits', 2, 'visits on which a thing was not seen where keyframe views should '
         'have shown it, before that belief ends; 0 disables'),
        ('miss_visit_gap', 30.0, '[s] misses further apart than this are separate visits'),
        ('feedback_rate', 0.3, 'step of the usefulness moving average per feedback, (0, 1]'),
        ('protect_score', 0.95, 'usefulness at or above which the budget never evicts'),
        ('important_tags', STRING_ARRAY, 'tags that protect an engram from budget eviction'),
        ('marker_period', 2.0, '[s] RViz marker refresh when the memory changed'),
        ('max_markers', 2000, 'most engrams drawn in RViz'),
        ('diagnostics_period', 1.0, '[s] diagnostics publishing period'),
        ('ingest_topic', 'engram/observations', 'topic of engram_ros/msg/Observation'),
        ('queue_depth', 1000, 'ingest subscription queue depth (DDS keep-last history): what '
         'waits to be taken; past it the oldest are overwritten, counted as lost'),
        ('ingest_batch', 64, 'observations taken off the subscription and committed together '
         '(one transaction) at most'),
        ('ingest_rate_limit', 1000.0, '[observations/s] per publisher; more are refused and '
         'counted (refused_rate) before any work, so a flooding publisher cannot starve the '
         'others; 0: no limit'),
        ('max_observation_bytes', 65536, '[bytes] larger serialized observations are refused '
         'unread (dropped_oversize)'),
        ('write_queue_size', 1000, 'observations kept while storage fails (full disk, locked '
         'database), written oldest first once it works; more are dropped and counted '
         '(dropped_queue_full)'),
        ('privacy.zones', STRING_ARRAY, 'regions where nothing is stored: circle:X,Y,R, '
         'box:XMIN,YMIN,XMAX,YMAX (memory frame, m)'),
        ('privacy.time_windows', STRING_ARRAY, 'times when nothing is stored: '
         'daily:HH:MM-HH:MM (local), epoch:START-END')]
    out += [(f'evidence_retention.{kind}', age,
             f'[s] {kind} evidence files older than this are deleted; 0 keeps them')
            for kind, age in DEFAULT_RETENTION.items()]
    out += [
        ('encrypt_evidence', False, 'encrypt evidence files at rest (Fernet)'),
        ('encryption_key_file', '', 'evidence key file; empty: $ENGRAM_KEY'),
        ('audit_max_mb', 64.0, '[MiB] the audit log rotates at this size'),
        ('audit_keep_files', 8, 'rotated audit files kept; 0 keeps every one'),
        ('audit_key_file', '', 'key file (engram keygen FILE, mode 0600, outside store_dir) '
         'that keys the audit log with HMAC-SHA256; empty: unkeyed, detects accidental damage '
         'only'),
        ('semantic_text', True, 'map query text that names no known tag to tags by meaning '
         'with the offline sentence model (loaded in the background)'),
        ('semantic_threshold', 0.38, 'least cosine similarity of a match by meaning'),
        ('fleet.uri', '', "fleet memory (docs/fleet.md): '' none; a milvus-lite path, or "
         'http://HOST:PORT (engram fleet serve, a Milvus server)'),
        ('fleet.token', '', "a Milvus server's user:password or API token"),
        ('fleet.collection', 'engrams', 'the fleet collection'),
        ('fleet.robot_id', '', "written with every fleet row; '': the node's namespace"),
        ('fleet.encoder', '', 'encoder identity all robots share; a collection made with '
         'another (or another dim) is refused'),
        ('fleet.sync_period', 2.0, '[s] between fleet syncs (uploads, deletes, reconnects)'),
        ('fleet.share', 'all', 'what leaves the robot: none, places, all, or kinds '
         '(object,place); privacy zones and windows never leave'),
        ('fleet.backlog', 10000, 'changed engrams kept while the fleet is unreachable; past '
         'it the oldest are dropped and counted')]
    return out


def store_config(value: Callable[[str], Any]) -> StoreConfig:
    """The store's configuration from the parameters; ``value(name)`` is a parameter's value
    (None for an unset string array).

    :raises PrivacyConfigError: for a privacy zone or time window that does not parse.
    """
    def strings(name: str) -> list[str]:
        return list(value(name) or [])

    merge = MergePolicy(
        radius={k: value(f'merge_radius.{k}') for k in KINDS},
        min_similarity={k: value(f'merge_similarity.{k}') for k in KINDS},
        promote_after=value('promote_after'), noise_support=value('noise_support'))
    privacy = PrivacyPolicy.parse(
        strings('privacy.zones'), strings('privacy.time_windows'),
        {k: float(value(f'evidence_retention.{k}')) for k in DEFAULT_RETENTION})
    retention = RetentionPolicy(feedback_rate=value('feedback_rate'),
                                protect_score=value('protect_score'),
                                important_tags=tuple(strings('important_tags')))
    return StoreConfig(dim=value('dim'), frame_id=value('frame_id'), max_k=value('max_k'),
                       short_term_capacity=value('short_term_capacity'),
                       budget=value('budget'), merge=merge, privacy=privacy,
                       retention=retention, anchor_radius=value('anchor_radius'),
                       edge_max_gap=value('edge_max_gap'), move_grace=value('move_grace'),
                       misses=MissPolicy(visits=value('miss_visits'),
                                         visit_gap=value('miss_visit_gap')))


def open_store(value: Callable[[str], Any]) -> tuple[MemoryStore, Path | None]:
    """The store the parameters ask for, with its evidence (key checked) and audit log, and its
    directory: on disk with consent (``persist``), else in RAM (directory None).

    :raises StoreOpenError, EvidenceError, AuditError, PrivacyConfigError, ValueError
        (KeyFileError among them): the memory cannot run with these parameters.
    """
    config = store_config(value)
    encrypt = value('encrypt_evidence')
    key_file = value('encryption_key_file')
    store_dir = Path(os.path.expanduser(value('store_dir')))
    # Read before the store opens, so a bad key file changes nothing.
    audit_key = (read_key_file(value('audit_key_file'), store_dir=store_dir).audit_keys()
                 if value('audit_key_file') else None)
    if encrypt:   # before anything is created: a refusal leaves no store behind
        load_key(key_file)
    if value('persist'):
        check_key(store_dir / AUDIT_FILE_NAME, audit_key)    # a refusal touches nothing
        storage = SQLiteStorage(store_dir, synchronous=value('synchronous'))
        try:
            evidence = EvidenceStore.from_settings(storage.evidence_dir, encrypt, key_file)
            audit = AuditLog(store_dir / AUDIT_FILE_NAME, key=audit_key,
                             db_head=storage.get_meta(META_AUDIT_HEAD),
                             max_bytes=int(value('audit_max_mb') * 1024 * 1024),
                             keep_files=value('audit_keep_files'))
        except BaseException:
            storage.close()
            raise
        return MemoryStore(storage, config, audit=audit, evidence=evidence), store_dir
    return MemoryStore(MemoryStorage(), config, audit=AuditLog(None, key=audit_key)), None


def check_start(value: Callable[[str], Any]) -> None:
    """Check the values the node starts with by the rules of :func:`rejection` (a start value
    is not checked by the on-set-parameters callback, which exists only once the node runs).

    :raises ParameterValueError: for the first value refused.
    """
    for name, _, _ in declarations():
        current = value(name)
        reason = None if current is None else rejection(name, current)
        if reason is not None:
            raise ParameterValueError(f'parameter {name} = {current!r} refused: {reason}')


def rejection(name: str, value: Any) -> str | None:
    """Why a value of parameter ``name`` is refused (at start or as a change); None when it is
    accepted."""
    if name in _NON_NEGATIVE_INTS and value < 0:
        return f'{name} must be >= 0' + (' (0 disables)' if name != 'audit_keep_files'
                                         else ' (0 keeps every file)')
    if name == 'synchronous' and str(value).upper() not in SYNCHRONOUS_MODES:
        return f'synchronous must be one of {", ".join(SYNCHRONOUS_MODES)}'
    if name in _POSITIVE_INTS and value < 1:
        return f'{name} must be >= 1'
    if (name.startswith('merge_') or name.startswith('evidence_retention.')
            or name in _NON_NEGATIVE) and not (math.isfinite(value) and value >= 0.0):
        return f'{name} must be finite and >= 0'
    if name in _POSITIVE and not (math.isfinite(value) and value > 0.0):
        return f'{name} must be finite and > 0'
    if name in ('frame_id', 'store_dir', 'ingest_topic') and not value:
        return f'{name} must not be empty'
    if name == 'semantic_threshold' and not -1.0 <= value <= 1.0:
        return 'semantic_threshold must be in [-1, 1]'
    if name == 'feedback_rate' and not 0.0 < value <= 1.0:
        return 'feedback_rate must be in (0, 1]'
    if name == 'fleet.share':
        try:
            parse_share(value)
        except ValueError as exc:
            return str(exc)
    return None


def robot_id(configured: str, namespace: str) -> str:
    """``fleet.robot_id``, or the namespace made an id (``/house/robot1`` -> ``house.robot1``;
    the host name in the root namespace): :mod:`engram_ros.core.fleet.view`'s rule."""
    return fleet_view.robot_id(configured) if configured else robot_id_from_namespace(namespace)


def open_fleet(value: Callable[[str], Any], store: MemoryStore,
               namespace: str) -> FleetSync | None:
    """The fleet sync the parameters ask for (not started; nothing is connected yet: the
    sync thread connects), or None without ``fleet.uri``."""
    if not value('fleet.uri'):
        return None
    link = FleetLink(value('fleet.uri'), store.config.dim,
                     robot_id=robot_id(value('fleet.robot_id'), namespace),
                     model=value('fleet.encoder'), collection=value('fleet.collection'),
                     token=value('fleet.token'), frame_id=store.config.frame_id,
                     retry_max=max(60.0, value('fleet.sync_period')))
    return FleetSync(store.storage, link, share=value('fleet.share'),
                     privacy=store.config.privacy, backlog=value('fleet.backlog'))


def apply(config: StoreConfig, text_matcher, name: str, value: Any) -> None:
    """Apply an accepted change of a tunable parameter to the running store's ``config`` (and
    its ``text_matcher``, when loaded); read-only and node-only parameters are ignored."""
    if name in ('max_k', 'short_term_capacity', 'budget'):
        setattr(config, name, value)
    elif name == 'promote_after':
        config.merge.promote_after = value
    elif name == 'noise_support':
        config.merge.noise_support = max(0, int(value))
    elif name.startswith('merge_radius.'):
        config.merge.radius[name.split('.', 1)[1]] = value
    elif name.startswith('merge_similarity.'):
        config.merge.min_similarity[name.split('.', 1)[1]] = value
    elif name.startswith('evidence_retention.'):
        config.privacy.retention[name.split('.', 1)[1]] = float(value)
    elif name in ('anchor_radius', 'edge_max_gap', 'move_grace'):
        setattr(config, name, float(value))
    elif name == 'miss_visits':
        config.misses.visits = int(value)
    elif name == 'miss_visit_gap':
        config.misses.visit_gap = float(value)
    elif name in ('feedback_rate', 'protect_score'):
        setattr(config.retention, name, float(value))
    elif name == 'important_tags':
        config.retention.important_tags = tuple(value or ())
    elif name == 'semantic_threshold' and text_matcher is not None:
        text_matcher.threshold = float(value)

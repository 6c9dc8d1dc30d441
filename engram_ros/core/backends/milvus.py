""":class:`MilvusBackend`: the memory's records, vectors and stage 1 in a Milvus collection.

The fleet backend (issue 15): the same :class:`~engram_ros.core.backend.MemoryBackend`
contract as the embedded default, kept in a Milvus collection reached by URI through pymilvus'
``MilvusClient``: a milvus-lite database file (``/path/fleet.db``: an embedded engine, no
server; tests and a one-machine fleet) or a Milvus server (``http://host:19530``).

One collection holds one memory. Its fields: ``id`` (the engram id, primary key), ``vector``
(the context vector, HNSW index with the COSINE metric as in production), the scalar fields
stage 1 filters on (``kind``, ``tags`` and ``tag_text``, ``x``/``y``/``z``,
``first_seen``/``last_seen``, ``valid_from``/``valid_to``/``current``, see
:mod:`.milvus_filter`), ``robot`` (the robot that
wrote the engram) and ``record`` (every other field, as the JSON record of
:mod:`engram_ros.core.model.codec`). The collection's properties carry the vector dimension
and the encoder identity (``engram.dim``, ``engram.model``) and the memory's metadata
(``engram.meta.<key>``); opening a collection made with another dimension, encoder or schema
is refused with an error naming both sides, before anything is written.

Milvus facts this module relies on or works around:

* ``delete`` answers with the ids it was given, not those it removed, so :meth:`delete`
  queries which exist first; deleted rows linger in segments until compaction.
* A query or search has a window of at most 16384 rows on a server: larger sets are read
  with ``query_iterator``.
* A milvus-lite database file is served to one process: a second process opening the same
  file fails (``Open local milvus failed``); this module says so in a :class:`RuntimeError`.
  Several robots share one file only through one process that hosts it (or a Milvus server).

Nothing here imports ROS; pymilvus is imported when a backend is made.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from typing import Iterator
from typing import Mapping
from typing import Sequence

import numpy as np

from engram_ros.core.backend import check_engram
from engram_ros.core.backend import Fetched
from engram_ros.core.backend import SearchResult
from engram_ros.core.backend import Stage1Filter
from engram_ros.core.backends.milvus_filter import expression
from engram_ros.core.backends.milvus_filter import in_region
from engram_ros.core.backends.milvus_filter import Plan
from engram_ros.core.backends.milvus_filter import plan
from engram_ros.core.backends.milvus_filter import rank_exact
from engram_ros.core.backends.milvus_filter import tag_text
from engram_ros.core.backends.milvus_filter import VALID_TO_OPEN
from engram_ros.core.backends.milvus_schema import check_collection
from engram_ros.core.backends.milvus_schema import create_collection
from engram_ros.core.backends.milvus_schema import MAX_RECORD_BYTES
from engram_ros.core.backends.milvus_schema import MAX_TAGS
from engram_ros.core.backends.milvus_schema import PROP_DIM
from engram_ros.core.backends.milvus_schema import PROP_FRAME
from engram_ros.core.backends.milvus_schema import PROP_META
from engram_ros.core.backends.milvus_schema import PROP_MODEL
from engram_ros.core.model.codec import from_record
from engram_ros.core.model.codec import to_record
from engram_ros.core.model.engram import Engram
from engram_ros.core.model.engram import kind_code

#: Rows per query window: below Milvus' 16384-row limit on ``offset + limit``.
WINDOW = 16000
#: Rows per insert or id query.
BATCH = 2000


class MilvusBackend:
    """:class:`~engram_ros.core.backend.MemoryBackend` in a Milvus collection.

    :param uri: a milvus-lite database file path, or a server URI (``http://host:19530``).
    :param dim: context-vector dimension.
    :param model: identity of the encoder that made the vectors (e.g. its name and version);
        every robot of a fleet must use the same, and a collection made with another is
        refused. ``''`` is an identity like any other.
    :param collection: the collection's name (made when missing).
    :param frame_id: the frame positions are in; a region in another frame is refused
        (``''``: regions are not checked).
    :param robot_id: written with every engram put through this backend.
    :param token: a server's ``user:password`` or API token (``''`` for none).
    :param plan_filters: plan a filtered search by the matching count (exact ranking of a
        small set, HNSW with a raised ``ef`` otherwise); ``False`` always runs the engine's
        filtered HNSW with ``ef_search`` (for comparison; recall falls at low selectivity).
    :param exact_threshold: a filter matching at most this many engrams is ranked exactly
        (fetched by a scalar query bounded to one more row, which also tells a larger set).
    :param ef_search: HNSW ``ef`` of an unfiltered search, and the least of a filtered one.
    :param filtered_ef: a filtered search's ``ef`` times the inverse matching fraction...
    :param max_ef: ... capped here.
    :param hnsw_m: HNSW graph degree (``M``) of a new collection.
    :param ef_construction: HNSW ``efConstruction`` of a new collection.
    :param tag_match: how tag filters are written: ``'array'`` (``ARRAY_CONTAINS_*`` on the
        ``tags`` array, native on a Milvus server) or ``'text'`` (``LIKE`` on ``tag_text``;
        milvus-lite runs array functions row by row in Python, about 100x slower); ``''``:
        ``'text'`` for a milvus-lite file, ``'array'`` for a server URI.
    :raises ValueError: for an existing collection with another dimension, encoder, map frame
        or schema (the message names both; nothing is written).
    :raises RuntimeError: when the engine cannot be opened (a milvus-lite file already served
        to another process, a server that does not answer).
    """

    #: [s] how long a collection found without its encoder is re-read (:meth:`_await_model`).
    MAKING_GRACE = 5.0

    def __init__(self, uri: str, dim: int, *, model: str = '', collection: str = 'engrams',
                 frame_id: str = '', robot_id: str = '', token: str = '',
                 plan_filters: bool = True, exact_threshold: int = 1024, ef_search: int = 128,
                 filtered_ef: int = 64, max_ef: int = 1024, hnsw_m: int = 16,
                 ef_construction: int = 200, tag_match: str = '') -> None:
        from pymilvus import MilvusClient
        if dim < 1:
            raise ValueError(f'dim={dim} must be >= 1')
        self.uri = uri
        self.collection = collection
        self.frame_id = frame_id
        self.robot_id = robot_id
        self.model = model
        self.plan_filters = plan_filters
        self.exact_threshold = exact_threshold
        self.ef_search = ef_search
        self.filtered_ef = filtered_ef
        self.max_ef = max_ef
        self._dim = int(dim)
        server = uri.startswith(('http://', 'https://', 'tcp://', 'grpc://'))
        self.tag_match = tag_match or ('array' if server else 'text')
        #: Whether the plan counts a large matching set (``count(*)``: cheap on a server,
        #: a scan of every matching row on milvus-lite) to scale ``ef``; else it assumes the
        #: fewest that can match (``exact_threshold + 1``), which raises ``ef`` the most.
        self.count_matches = server
        if self.tag_match not in ('array', 'text'):
            raise ValueError(f"tag_match={tag_match!r}: 'array', 'text' or ''")
        self._lock = threading.RLock()
        self._closed = False
        #: How each search ran, by plan (``exact``, ``hnsw``, ``hnsw_then_exact``, ``empty``).
        self.plan_counts: dict[str, int] = {}
        try:
            self._client = MilvusClient(uri, token=token)
        except Exception as exc:          # pymilvus raises its own exception types
            raise RuntimeError(
                f'cannot open Milvus at {uri!r}: {exc}. A milvus-lite database file is served '
                f'to one process at a time; share it through one process or a Milvus '
                f'server') from exc
        try:
            if self._client.has_collection(collection):
                self._check_collection()
            else:
                self._create(hnsw_m, ef_construction)
            self._client.load_collection(collection)
        except BaseException:
            self._client.close()
            raise

    @classmethod
    def open_existing(cls, uri: str, *, collection: str = 'engrams', token: str = '',
                      **options: Any) -> MilvusBackend:
        """A backend on a collection that exists, with the dimension and encoder it records
        (for tools that work on a fleet collection without an encoder of their own).

        :raises ValueError: when the collection does not exist or records no dimension.
        :raises RuntimeError: when the engine cannot be opened.
        """
        from pymilvus import MilvusClient
        try:
            client = MilvusClient(uri, token=token)
        except Exception as exc:          # pymilvus raises its own exception types
            raise RuntimeError(f'cannot open Milvus at {uri!r}: {exc}') from exc
        try:
            if not client.has_collection(collection):
                raise ValueError(f'no collection {collection!r} at {uri!r}')
            props = client.describe_collection(collection).get('properties') or {}
        finally:
            client.close()
        if PROP_DIM not in props:
            raise ValueError(f'collection {collection!r} at {uri!r} records no dimension '
                             f'({PROP_DIM}): not an engram_ros memory')
        return cls(uri, int(props[PROP_DIM]), model=props.get(PROP_MODEL, ''),
                   collection=collection, token=token, **options)

    @property
    def dim(self) -> int:
        return self._dim

    # ------------------------------------------------------------------ records

    def put(self, engrams: Sequence[Engram], *,
            robots: Mapping[int, str] | None = None) -> None:
        """See :meth:`MemoryBackend.put`; a write is atomic only per batch of rows the engine
        accepts (all rows are checked first, so a refused engram writes nothing).

        :param robots: the ``robot`` of the rows of these ids, where it is not this backend's
            ``robot_id`` (fleet consolidation rewrites other robots' rows as history and
            keeps who saw them).
        """
        last = list({e.id: e for e in engrams}.values())
        rows = [self._row(e) for e in last]
        for row in rows:
            if robots is not None and row['id'] in robots:
                row['robot'] = str(robots[row['id']])
        with self._lock:
            self._open()
            # An insert costs the client a fraction of an upsert: upsert only ids kept already.
            kept = set(self._present(sorted(r['id'] for r in rows)))
            for write, chosen in ((self._client.insert, [r for r in rows if r['id'] not in kept]),
                                  (self._client.upsert, [r for r in rows if r['id'] in kept])):
                for start in range(0, len(chosen), BATCH):
                    write(self.collection, chosen[start:start + BATCH])

    def get(self, ids: Sequence[int]) -> list[Engram]:
        """See :meth:`MemoryBackend.get`."""
        wanted = [int(i) for i in ids]
        found: dict[int, Engram] = {}
        unique = sorted(set(wanted))
        with self._lock:
            self._open()
            for start in range(0, len(unique), BATCH):
                rows = self._client.query(self.collection, ids=unique[start:start + BATCH],
                                          output_fields=['id', 'vector', 'record'])
                for row in rows:
                    found[int(row['id'])] = _engram(row)
        return [found[i] for i in wanted if i in found]

    def robots_of(self, ids: Sequence[int]) -> dict[int, str]:
        """See :meth:`MemoryBackend.robots_of` (each row's ``robot`` field)."""
        unique = sorted({int(i) for i in ids})
        found: dict[int, str] = {}
        with self._lock:
            self._open()
            for start in range(0, len(unique), BATCH):
                rows = self._client.query(self.collection, ids=unique[start:start + BATCH],
                                          output_fields=['id', 'robot'])
                found.update((int(r['id']), str(r['robot'])) for r in rows)
        return found

    def fetch(self, where: Stage1Filter, limit: int) -> Fetched:
        """See :meth:`MemoryBackend.fetch`: one query of at most ``limit + 1`` rows (a
        region's box may hold rows its ball does not: ``more`` then says only that the box
        held more), at most :data:`WINDOW` rows."""
        if limit < 1:
            raise ValueError(f'limit={limit} must be >= 1')
        self._frame(where)
        limit = min(int(limit), WINDOW - 1)
        fields = ['id', 'vector', 'record', 'robot']
        if where.region is not None:
            fields += ['x', 'y', 'z']
        with self._lock:
            self._open()
            rows = list(self._client.query(
                self.collection, filter=expression(where, self.tag_match) or 'id > 0',
                output_fields=fields, limit=limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        if where.region is not None:
            xyz = np.asarray([[r['x'], r['y'], r['z']] for r in rows],
                             dtype=np.float32).reshape(len(rows), 3)
            keep = in_region(where, xyz)
            rows = [r for r, k in zip(rows, keep.tolist()) if k]
        engrams = [_engram(r) for r in rows]
        return Fetched(engrams, {int(r['id']): str(r['robot']) for r in rows}, more)

    def delete(self, ids: Sequence[int]) -> int:
        """See :meth:`MemoryBackend.delete`."""
        with self._lock:
            self._open()
            present = self._present(sorted({int(i) for i in ids}))
            for start in range(0, len(present), BATCH):
                self._client.delete(self.collection, ids=present[start:start + BATCH])
            return len(present)

    def ids_of_robot(self, robot: str) -> np.ndarray:
        """Ids (increasing) of every row written by ``robot``, history included."""
        with self._lock:
            self._open()
            return self._ids(f'robot == {json.dumps(str(robot))}')

    def compact(self) -> int:
        """Seal what was written and ask the engine to compact the collection, so deleted
        rows leave its segments; the compaction job's id (0 when the engine gives none).

        A Milvus server rewrites the segments in the background (``get_compaction_state``
        follows the job). milvus-lite 3.x accepts the call and does nothing more: it compacts
        by itself after a flush, once enough data files of one size accumulate, and until then
        deleted rows stay in its data files on disk (hidden by tombstones)."""
        with self._lock:
            self._open()
            self._client.flush(self.collection)
            job = self._client.compact(self.collection)
            return int(job or 0)

    def iter_all(self, batch_size: int = 10000) -> Iterator[Engram]:
        """See :meth:`MemoryBackend.iter_all` (the ids are read first, then the engrams in
        batches; an engram deleted meanwhile is skipped)."""
        with self._lock:
            self._open()
            ids = self._ids('id > 0')
        for start in range(0, len(ids), max(1, batch_size)):
            yield from self.get(ids[start:start + batch_size].tolist())

    def count(self) -> int:
        """See :meth:`MemoryBackend.count`."""
        with self._lock:
            self._open()
            return self._count('')

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        """See :meth:`MemoryBackend.get_meta` (a property of the collection)."""
        with self._lock:
            self._open()
            return self._properties().get(PROP_META + key, default)

    def meta_items(self, prefix: str = '') -> dict[str, str]:
        """Every metadata key starting with ``prefix`` and its value (one read)."""
        with self._lock:
            self._open()
            return {k[len(PROP_META):]: v for k, v in self._properties().items()
                    if k.startswith(PROP_META + prefix)}

    def set_meta(self, key: str, value: str) -> None:
        """See :meth:`MemoryBackend.set_meta`."""
        with self._lock:
            self._open()
            self._client.alter_collection_properties(self.collection,
                                                     properties={PROP_META + key: str(value)})

    # ------------------------------------------------------------------ search

    def search(self, vector: np.ndarray, k: int,
               where: Stage1Filter | None = None) -> SearchResult:
        """See :meth:`MemoryBackend.search`; a filter is planned (see :mod:`.milvus_filter`)."""
        query = self._query(vector, k)
        self._frame(where)
        expr = expression(where, self.tag_match)
        has_region = where is not None and where.region is not None
        with self._lock:
            self._open()
            if not expr:
                return self._hnsw(query, k, '', where,
                                  Plan(self._count(''), False, max(self.ef_search, k), k))
            if not self.plan_filters:
                return self._hnsw(query, k, expr, where,
                                  Plan(k, False, max(self.ef_search, k),
                                       k if not has_region else 4 * k), fallback=False)
            # The plan needs to know whether at most exact_threshold engrams match: a query
            # bounded to one more row answers that and, when they are few, brings what the
            # exact ranking needs. (milvus-lite materialises every row a count(*) matches.)
            ids, xyz, vectors = self._scan(expr, ('x', 'y', 'z') if has_region else (),
                                           vectors=True, limit=self.exact_threshold + 1)
            assert vectors is not None
            if ids.shape[0] <= self.exact_threshold:
                self._counted('exact')
                if has_region:
                    keep = in_region(where, xyz)
                    ids, vectors = ids[keep], vectors[keep]
                return SearchResult(*rank_exact(ids, vectors, query, k))
            total = self._count('')
            matching = self._count(expr) if self.count_matches else ids.shape[0]
            chosen = plan(matching, total, k, has_region=has_region,
                          exact_threshold=self.exact_threshold, ef_search=self.ef_search,
                          filtered_ef=self.filtered_ef, max_ef=self.max_ef)
            # A count of a region's box or a lower bound is no count of what passes.
            exact_count = self.count_matches and not has_region
            return self._hnsw(query, k, expr, where, chosen, known=exact_count)

    def select(self, where: Stage1Filter) -> np.ndarray:
        """See :meth:`MemoryBackend.select`."""
        self._frame(where)
        with self._lock:
            self._open()
            if where.region is None:
                return self._ids(expression(where, self.tag_match))
            ids, xyz, _ = self._scan(expression(where, self.tag_match), ('x', 'y', 'z'))
            keep = in_region(where, xyz)
            return np.sort(ids[keep])

    def flush(self) -> None:
        """Seal what was written into segments (Milvus ``flush``): milvus-lite keeps recent
        rows in a memtable that every query scans row by row and indexes a segment's vectors
        (HNSW) when it is sealed; a bulk load calls this once at its end."""
        with self._lock:
            self._open()
            self._client.flush(self.collection)

    def close(self) -> None:
        """See :meth:`MemoryBackend.close`."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._client.close()

    # ------------------------------------------------------------------ internals

    def _create(self, hnsw_m: int, ef_construction: int) -> None:
        properties = {PROP_DIM: str(self._dim), PROP_MODEL: self.model}
        if self.frame_id:
            properties[PROP_FRAME] = self.frame_id
        if not create_collection(self._client, self.collection, self._dim, properties,
                                 hnsw_m, ef_construction):
            self._check_collection()          # another robot made it first

    def _check_collection(self) -> None:
        """Refuse a collection this backend cannot share
        (:func:`.milvus_schema.check_collection`)."""
        check_collection(self._client, self.collection, self.uri, self._dim, self.model,
                         self.frame_id, self._await_model)

    def _await_model(self) -> str | None:
        """The encoder of a collection found without one, once its maker records it.

        :meth:`_create` gives the properties with the collection; an engine that ignores them
        gets them written just after, and a robot opening the collection in between (two
        robots starting at once on a new fleet) would refuse for good a collection that is
        only being made. So it re-reads for :attr:`MAKING_GRACE` seconds; None if it is still
        missing then (not made by engram_ros, or its maker died).
        """
        deadline = time.monotonic() + self.MAKING_GRACE
        while True:
            model = self._properties().get(PROP_MODEL)
            if model is not None or time.monotonic() >= deadline:
                return model
            time.sleep(0.1)

    def _properties(self) -> dict[str, str]:
        return dict(self._client.describe_collection(self.collection).get('properties') or {})

    def _open(self) -> None:
        if self._closed:
            raise RuntimeError(f'the Milvus backend on {self.uri!r} is closed')

    def _frame(self, where: Stage1Filter | None) -> None:
        region = None if where is None else where.region
        if region is not None and region.frame_id and self.frame_id and \
                region.frame_id != self.frame_id:
            raise ValueError(f'region is in frame {region.frame_id!r}; this memory answers in '
                             f'{self.frame_id!r}')

    def _query(self, vector: np.ndarray, k: int) -> np.ndarray:
        if k < 1:
            raise ValueError(f'k={k} must be >= 1')
        q = np.asarray(vector, dtype=np.float64).reshape(-1)
        if q.shape[0] != self._dim:
            raise ValueError(f'query vector has {q.shape[0]} dimensions; the memory uses '
                             f'{self._dim}')
        norm = float(np.linalg.norm(q)) if np.all(np.isfinite(q)) else 0.0
        if not norm > 0.0:
            raise ValueError('query vector is not finite or all zeros')
        return (q / norm).astype(np.float32)

    def _row(self, engram: Engram) -> dict[str, Any]:
        check_engram(engram, self._dim)
        record = to_record(engram)
        del record['vector']
        text = json.dumps(record, separators=(',', ':'), allow_nan=False)
        if len(text.encode('utf-8')) > MAX_RECORD_BYTES:
            raise ValueError(f'engram {engram.id} is a record of {len(text.encode())} bytes; '
                             f'the Milvus backend keeps at most {MAX_RECORD_BYTES}')
        tags = list(engram.tags)
        text_of_tags = tag_text(tags)
        if len(tags) > MAX_TAGS or len(text_of_tags) > MAX_RECORD_BYTES:
            raise ValueError(f'engram {engram.id} has {len(tags)} tags, {len(text_of_tags)} '
                             f'bytes in hex; the Milvus backend keeps at most {MAX_TAGS} tags '
                             f'in at most {MAX_RECORD_BYTES} bytes')
        position = np.asarray(engram.position, dtype=np.float64).reshape(-1)
        current = engram.valid_to is None
        return {'id': int(engram.id),
                'vector': np.asarray(engram.vector, dtype=np.float32).reshape(-1).tolist(),
                'kind': kind_code(engram.kind), 'tags': tags, 'tag_text': text_of_tags,
                'x': float(position[0]), 'y': float(position[1]), 'z': float(position[2]),
                'first_seen': float(engram.first_seen), 'last_seen': float(engram.last_seen),
                'valid_from': float(max(engram.valid_from, engram.first_seen) if current
                                    else engram.valid_from),
                'valid_to': VALID_TO_OPEN if current else float(engram.valid_to),
                'current': current, 'robot': self.robot_id, 'record': text}

    def _count(self, expr: str) -> int:
        rows = self._client.query(self.collection, filter=expr, output_fields=['count(*)'])
        return int(rows[0]['count(*)'])

    def _present(self, ids: list[int]) -> list[int]:
        present: list[int] = []
        for start in range(0, len(ids), BATCH):
            rows = self._client.query(self.collection, ids=ids[start:start + BATCH],
                                      output_fields=['id'])
            present.extend(int(r['id']) for r in rows)
        return sorted(present)

    def _scan(self, expr: str, fields: Sequence[str] = (), vectors: bool = False,
              limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Ids, ``fields`` (float32 columns) and, if asked, the vectors of the rows matching
        ``expr``: at most ``limit`` of them in one query (``limit`` <= :data:`WINDOW`), or
        every one through an iterator (a query window holds at most 16384 rows)."""
        wanted = ['id', *fields] + (['vector'] if vectors else [])
        if limit is not None and limit <= WINDOW:
            rows = list(self._client.query(self.collection, filter=expr or 'id > 0',
                                           output_fields=wanted, limit=limit))
        else:
            rows = []
            iterator = self._client.query_iterator(self.collection, batch_size=WINDOW,
                                                   filter=expr or 'id > 0',
                                                   output_fields=wanted)
            try:
                while True:
                    batch = iterator.next()
                    if not batch:
                        break
                    rows.extend(batch)
            finally:
                iterator.close()
        n = len(rows)
        ids = np.fromiter((r['id'] for r in rows), dtype=np.int64, count=n)
        columns = np.asarray([[r[f] for f in fields] for r in rows],
                             dtype=np.float32).reshape(n, len(fields))
        stacked = None
        if vectors:
            stacked = np.asarray([r['vector'] for r in rows], dtype=np.float32)
            stacked = stacked.reshape(n, self._dim)
        return ids, columns, stacked

    def _ids(self, expr: str) -> np.ndarray:
        return np.sort(self._scan(expr)[0])

    def _exact(self, query: np.ndarray, k: int, expr: str,
               where: Stage1Filter | None) -> SearchResult:
        """Fetch every matching engram's vector (and position for a region) and rank here."""
        region = where is not None and where.region is not None
        ids, xyz, vectors = self._scan(expr, ('x', 'y', 'z') if region else (), vectors=True)
        assert vectors is not None
        if region:
            keep = in_region(where, xyz)
            ids, vectors = ids[keep], vectors[keep]
        found, scores = rank_exact(ids, vectors, query, k)
        return SearchResult(found, scores)

    def _hnsw(self, query: np.ndarray, k: int, expr: str, where: Stage1Filter | None,
              chosen: Plan, fallback: bool = True, known: bool = True) -> SearchResult:
        """The engine's (filtered) HNSW search; a region's exact check on the hits. Fewer
        than ``k`` hits left while more may match (``known``: ``chosen.matching`` is the
        number that match): the exact path answers (planned only)."""
        limit = max(1, min(chosen.limit, WINDOW))
        fields = ['x', 'y', 'z'] if where is not None and where.region is not None else []
        hits = self._client.search(
            self.collection, data=[query.tolist()], limit=limit, filter=expr,
            output_fields=fields, search_params={'metric_type': 'COSINE',
                                                 'params': {'ef': max(chosen.ef, limit)}})[0]
        ids = np.fromiter((int(h['id']) for h in hits), dtype=np.int64, count=len(hits))
        scores = np.fromiter((float(h['distance']) for h in hits), dtype=np.float32,
                             count=len(hits))
        if fields:
            xyz = np.asarray([[h['entity'][f] for f in fields] for h in hits],
                             dtype=np.float32).reshape(len(hits), 3)
            keep = in_region(where, xyz)
            ids, scores = ids[keep], scores[keep]
        order = np.argsort(-scores, kind='stable')[:k]
        ids, scores = ids[order], scores[order]
        wanted = min(k, chosen.matching) if known else k
        if fallback and ids.shape[0] < wanted:
            self._counted('hnsw_then_exact')
            return self._exact(query, k, expr, where)
        self._counted('hnsw')
        return SearchResult(ids, scores)

    def _counted(self, how: str) -> None:
        self.plan_counts[how] = self.plan_counts.get(how, 0) + 1


def _engram(row: dict) -> Engram:
    record = json.loads(row['record'])
    # The engine's FLOAT_VECTOR is numbers already: the codec's check of each value as JSON
    # (about 85 % of decoding a 256-d row) is spent on a stand-in and the vector set after.
    record['vector'] = [1.0]
    engram = from_record(record)
    engram.vector = np.asarray(row['vector'], dtype=np.float32).reshape(-1)
    return engram

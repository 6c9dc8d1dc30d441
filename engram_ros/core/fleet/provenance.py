"""Where a merged fleet engram came from: its members' ids and robots, and who merged them.

Kept in a side collection of the fleet collection (``<collection>_provenance``: the merged
engram's id as primary key, the record as JSON), not in the collection's properties: Milvus
returns every property with each ``describe_collection``, which the lease reads before every
write, so thousands of merged engrams there would slow every check; rows here are read and
written by id, in batches. (Milvus needs a vector field in every collection: a 2-d zero vector
stands in, never searched.) Nothing here imports ROS; pymilvus is imported when one is opened.
"""

from __future__ import annotations

import json
from typing import Mapping
from typing import Sequence

#: Suffix of the side collection's name.
SUFFIX = '_provenance'
#: Longest JSON record kept (Milvus' VARCHAR limit); a longer member list keeps its newest.
MAX_BYTES = 65535
#: Rows per query or write.
BATCH = 2000


class Provenance:
    """The provenance records of one fleet collection (made when missing).

    :param uri: the fleet collection's URI (milvus-lite file or server).
    :param collection: the fleet collection's name; the records live in
        ``collection + SUFFIX``.
    :param token: a server's ``user:password`` or API token.
    :raises RuntimeError: when Milvus cannot be opened.
    """

    def __init__(self, uri: str, collection: str, *, token: str = '') -> None:
        from pymilvus import MilvusClient
        self.name = collection + SUFFIX
        try:
            self._client = MilvusClient(uri, token=token)
        except Exception as exc:          # pymilvus raises its own exception types
            raise RuntimeError(f'cannot open Milvus at {uri!r}: {exc}') from exc
        try:
            if not self._client.has_collection(self.name):
                self._create()
            self._client.load_collection(self.name)
        except BaseException:
            self._client.close()
            raise

    def get(self, ids: Sequence[int]) -> dict[int, dict]:
        """``id -> record`` (``members``: ``[[id, robot], ...]``, ``holder``, ``token``,
        ``time``) of the merged engrams among ``ids`` that have one."""
        unique = sorted({int(i) for i in ids})
        out: dict[int, dict] = {}
        for start in range(0, len(unique), BATCH):
            for row in self._client.query(self.name, ids=unique[start:start + BATCH],
                                          output_fields=['id', 'record']):
                out[int(row['id'])] = json.loads(row['record'])
        return out

    def put(self, records: Mapping[int, dict]) -> None:
        """Write (replace) records by merged engram id."""
        rows = [{'id': int(i), 'record': _text(r), 'v': [0.0, 0.0]}
                for i, r in sorted(records.items())]
        for start in range(0, len(rows), BATCH):
            self._client.upsert(self.name, rows[start:start + BATCH])

    def delete(self, ids: Sequence[int]) -> None:
        unique = sorted({int(i) for i in ids})
        for start in range(0, len(unique), BATCH):
            self._client.delete(self.name, ids=unique[start:start + BATCH])

    def close(self) -> None:
        self._client.close()

    def _create(self) -> None:
        from pymilvus import DataType
        from pymilvus import MilvusClient
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                            description='engram_ros fleet merge provenance')
        schema.add_field('id', DataType.INT64, is_primary=True)
        schema.add_field('record', DataType.VARCHAR, max_length=MAX_BYTES)
        schema.add_field('v', DataType.FLOAT_VECTOR, dim=2)
        index = self._client.prepare_index_params()
        index.add_index('v', index_type='FLAT', metric_type='L2')
        self._client.create_collection(self.name, schema=schema, index_params=index)


def _text(record: dict) -> str:
    """The record as JSON within :data:`MAX_BYTES` (the oldest members dropped first; a merged
    engram of thousands of sightings keeps the newest, and says how many it dropped)."""
    record = dict(record)
    text = json.dumps(record, sort_keys=True)
    while len(text.encode('utf-8')) > MAX_BYTES and record.get('members'):
        cut = max(1, len(record['members']) // 10)
        record['members'] = record['members'][cut:]
        record['members_dropped'] = int(record.get('members_dropped', 0)) + cut
        text = json.dumps(record, sort_keys=True)
    return text

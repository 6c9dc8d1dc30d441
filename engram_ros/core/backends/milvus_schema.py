"""The Milvus collection of an engram_ros memory: its fields, the properties that name its
vector dimension, encoder and map frame, how it is made, and the check a backend runs before
sharing one (another schema, dimension, encoder or frame is refused, naming both sides).

Nothing here imports ROS; pymilvus is imported when a collection is made.
"""

from __future__ import annotations

from typing import Any
from typing import Callable

from engram_ros.core.model.limits import MAX_TAG_BYTES

#: Fields of the collection, in order; a collection without one of them is another schema.
FIELDS = ('id', 'vector', 'kind', 'tags', 'tag_text', 'x', 'y', 'z', 'first_seen', 'last_seen',
          'valid_from', 'valid_to', 'current', 'robot', 'record')
#: Collection properties: the vector dimension, the encoder identity, metadata keys' prefix.
PROP_DIM = 'engram.dim'
PROP_MODEL = 'engram.model'
#: The map frame every robot's positions are in (one shared frame: aligning maps is out of scope).
PROP_FRAME = 'engram.frame'
PROP_META = 'engram.meta.'
#: Most tags one engram may carry in the collection (Milvus' largest ARRAY capacity).
MAX_TAGS = 4096
#: Longest JSON record (Milvus' VARCHAR limit); a longer one is refused before writing.
MAX_RECORD_BYTES = 65535


def create_collection(client: Any, name: str, dim: int, properties: dict[str, str],
                      hnsw_m: int, ef_construction: int) -> bool:
    """Make the collection with its ``properties`` (dimension, encoder, frame) in one call:
    another robot opening it a moment later must never see it without them (it would refuse it
    for good). False: another process made it first (the caller checks that one instead).
    """
    from pymilvus import DataType
    from pymilvus import MilvusClient
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False,
                                        description='engram_ros memory')
    schema.add_field('id', DataType.INT64, is_primary=True)
    schema.add_field('vector', DataType.FLOAT_VECTOR, dim=dim)
    schema.add_field('kind', DataType.INT8)
    schema.add_field('tags', DataType.ARRAY, element_type=DataType.VARCHAR,
                     max_capacity=MAX_TAGS, max_length=MAX_TAG_BYTES)
    schema.add_field('tag_text', DataType.VARCHAR, max_length=MAX_RECORD_BYTES)
    for field_name in ('x', 'y', 'z'):
        schema.add_field(field_name, DataType.FLOAT)
    for field_name in ('first_seen', 'last_seen', 'valid_from', 'valid_to'):
        schema.add_field(field_name, DataType.DOUBLE)
    schema.add_field('current', DataType.BOOL)
    schema.add_field('robot', DataType.VARCHAR, max_length=256)
    schema.add_field('record', DataType.VARCHAR, max_length=MAX_RECORD_BYTES)
    index = client.prepare_index_params()
    index.add_index('vector', index_type='HNSW', metric_type='COSINE',
                    params={'M': hnsw_m, 'efConstruction': ef_construction})
    try:
        client.create_collection(name, schema=schema, index_params=index, properties=properties)
    except Exception:                 # pymilvus' own errors: another robot made it first?
        if not client.has_collection(name):
            raise
        return False
    made = dict(client.describe_collection(name).get('properties') or {})
    if made.get(PROP_MODEL) != properties.get(PROP_MODEL):      # an engine ignoring them
        client.alter_collection_properties(name, properties=properties)
    return True


def check_collection(client: Any, name: str, uri: str, dim: int, model: str, frame_id: str,
                     await_model: Callable[[], str | None]) -> None:
    """Refuse a collection a backend cannot share: another schema, dimension, encoder or map
    frame (the message names what the collection has and what was asked). ``await_model``
    re-reads the encoder of a collection found without one (its maker may be writing it).

    :raises ValueError: naming both sides; nothing is written.
    """
    info = client.describe_collection(name)
    fields = {f['name']: f for f in info.get('fields', [])}
    missing = [f for f in FIELDS if f not in fields]
    if missing:
        raise ValueError(f'Milvus collection {name!r} at {uri!r} has another schema: fields '
                         f'{sorted(fields)}; engram_ros needs {list(FIELDS)} (missing '
                         f'{missing})')
    stored_dim = int(fields['vector'].get('params', {}).get('dim', -1))
    props = info.get('properties', {}) or {}
    stored_model = props.get(PROP_MODEL)
    if stored_dim != dim:
        raise ValueError(f'Milvus collection {name!r} at {uri!r} holds {stored_dim}-d vectors '
                         f'(encoder {stored_model!r}); this memory uses {dim}-d vectors '
                         f'(encoder {model!r})')
    if stored_model is None:
        stored_model = await_model()
    if stored_model is None:
        raise ValueError(f'Milvus collection {name!r} at {uri!r} names no encoder '
                         f'({PROP_MODEL} missing); this memory uses encoder {model!r}')
    if stored_model != model:
        raise ValueError(f'Milvus collection {name!r} at {uri!r} holds vectors of encoder '
                         f'{stored_model!r}; this memory uses encoder {model!r} (both '
                         f'{dim}-d): every robot must use the same encoders')
    stored_frame = props.get(PROP_FRAME)
    if stored_frame and frame_id and stored_frame != frame_id:
        raise ValueError(f'Milvus collection {name!r} at {uri!r} holds positions in frame '
                         f'{stored_frame!r}; this memory\'s are in {frame_id!r}: every robot of '
                         f'a fleet must share one map frame (aligning maps is out of scope)')
    if not stored_frame and frame_id:      # a collection made without one: name it
        client.alter_collection_properties(name, properties={PROP_FRAME: frame_id})

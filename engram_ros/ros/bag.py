"""rosbag2 files (MCAP or SQLite 3), read and written with the ``rosbags`` library, messages as
rclpy objects.

``rosbags`` handles the containers (MCAP chunks and summary, ``metadata.yaml``, the sqlite3
plugin) without a ROS installation, which this package does not have (ROS comes from wheels, so
there is no ``rosbag2_py``). The CDR bytes are made and read by rclpy's own serialiser
(``rclpy.serialization``), so a message read from a bag is the very object a subscription would
deliver and goes through the same conversions as live input; rosbags' type store only supplies
the message definitions a bag carries (the ROS 2 Kilted store, plus this package's messages
from ``msg/``).

    with BagWriter(path) as bag:          # a new MCAP bag directory, 0700, files 0600
        bag.write('/camera/color/image_raw', image)          # logged at the header stamp

    with BagReader(path) as bag:
        for topic, log_ns, msg in bag.messages(['/tf', '/odom']):
            ...

Every failure to read is a :class:`BagError` whose message names the bag and, where there is
one, the topic and its type.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Iterable
from typing import Iterator

from rclpy.serialization import deserialize_message
from rclpy.serialization import serialize_message
from rosbags.rosbag2 import Reader
from rosbags.rosbag2 import StoragePlugin
from rosbags.rosbag2 import Writer
from rosbags.typesys import get_types_from_msg
from rosbags.typesys import get_typestore
from rosbags.typesys import Stores

from engram_ros.core.files import DIR_MODE
from engram_ros.core.files import FILE_MODE

#: Message definitions the Kilted store lacks: this package's (``msg/``) and the stand-ins of
#: the ones ROS from wheels lacks (``shims/<package>/msg``: vision_msgs), from the source tree.
_ROOT = Path(__file__).resolve().parents[2]
_MSG_DIRS = ((_ROOT / 'msg', 'engram_ros'),
             *((d / 'msg', d.name) for d in sorted((_ROOT / 'shims').glob('*'))))


def _msg_dirs() -> list[tuple[Path, str]]:
    """:data:`_MSG_DIRS`, or in an install space the share directories of the packages."""
    if (_ROOT / 'msg').is_dir():
        return list(_MSG_DIRS)
    try:
        from ament_index_python.packages import get_package_share_directory
    except ImportError:
        return []
    out = []
    for package in ('engram_ros', 'vision_msgs'):
        try:
            out.append((Path(get_package_share_directory(package)) / 'msg', package))
        except Exception:       # not installed: its types cannot be written
            continue
    return out


class BagError(ValueError):
    """A bag that cannot be read or written; the message names the bag and the topic."""


def msgtype_of(msg) -> str:
    """``sensor_msgs/msg/Image`` for an rclpy message object."""
    return f'{type(msg).__module__.split(".")[0]}/msg/{type(msg).__name__}'


def message_class(msgtype: str):
    """The rclpy class of ``pkg/msg/Name``.

    :raises BagError: when no installed interface package defines it.
    """
    pkg, kind, name = (msgtype.split('/') + ['', ''])[:3]
    if kind != 'msg' or not pkg or not name:
        raise BagError(f'{msgtype!r} is not a message type (pkg/msg/Name)')
    try:
        return getattr(importlib.import_module(f'{pkg}.msg'), name)
    except (ImportError, AttributeError):
        raise BagError(f'message type {msgtype} is not installed') from None


def _typestore():
    """The Kilted type store plus the definitions of :data:`_MSG_DIRS` it lacks."""
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for folder, package in _msg_dirs():
        for path in sorted(folder.glob('*.msg')) if folder.is_dir() else ():
            name = f'{package}/msg/{path.stem}'
            if name not in store.types:
                types.update(get_types_from_msg(path.read_text(), name))
    store.register(types)
    return store


def _stamp_ns(msg) -> int | None:
    header = getattr(msg, 'header', None)
    if header is None:
        return None
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class BagWriter:
    """A new rosbag2 bag (MCAP by default): one connection per topic, made on its first
    message. The directory is created 0700 before anything is written in it, and every file is
    0600 once closed (bags hold what the robot saw)."""

    def __init__(self, path: Path | str, storage: str = 'mcap') -> None:
        """:raises BagError: when ``path`` exists or the storage is unknown."""
        self.path = Path(path).expanduser()
        plugins = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
        if storage not in plugins:
            raise BagError(f'bag storage {storage!r}: accepted {", ".join(plugins)}')
        if self.path.exists():
            raise BagError(f'{self.path} exists: a bag is written to a new directory')
        self._typestore = _typestore()
        self._writer = Writer(self.path, version=9, storage_plugin=plugins[storage])
        # rosbags makes the directory 0755 and opens the data file in it: make the directory
        # private before anything is written to the file (metadata comes at close)
        self._writer.open()
        os.chmod(self.path, DIR_MODE)
        for path in self.path.iterdir():
            os.chmod(path, FILE_MODE)
        self._connections: dict[str, object] = {}
        self.counts: dict[str, int] = {}

    def write(self, topic: str, msg, log_ns: int | None = None) -> None:
        """Append ``msg`` on ``topic``, logged at ``log_ns`` [ns] (default: its header stamp).

        :raises BagError: for a message without a header and no ``log_ns``, or a type the
            type store does not know.
        """
        if log_ns is None:
            log_ns = _stamp_ns(msg)
            if log_ns is None:
                raise BagError(f'{topic}: a {msgtype_of(msg)} has no header: give its log time')
        connection = self._connections.get(topic)
        if connection is None:
            msgtype = msgtype_of(msg)
            if msgtype not in self._typestore.types:
                raise BagError(f'{topic}: no message definition for {msgtype}')
            connection = self._writer.add_connection(topic, msgtype, typestore=self._typestore)
            self._connections[topic] = connection
        self._writer.write(connection, log_ns, serialize_message(msg))
        self.counts[topic] = self.counts.get(topic, 0) + 1

    def close(self) -> None:
        """Write the index and metadata; make the files private. Idempotent."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        writer.close()
        for path in self.path.iterdir():
            os.chmod(path, FILE_MODE)

    def __enter__(self) -> 'BagWriter':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BagReader:
    """A rosbag2 bag (MCAP or SQLite 3) read in log-time order, messages deserialised by
    rclpy."""

    def __init__(self, path: Path | str) -> None:
        """:raises BagError: when the bag is missing, truncated or damaged."""
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise BagError(f'{self.path}: no such bag')
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:    # rosbags raises ReaderError, and others for a cut file
            raise BagError(f'{self.path}: cannot open the bag (truncated or damaged?): '
                           f'{type(exc).__name__}: {exc}') from None
        self._classes: dict[str, object] = {}

    @property
    def topics(self) -> dict[str, str]:
        """``{topic: message type}``."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    def count(self, topics: Iterable[str]) -> int:
        """How many messages ``topics`` hold (from the bag's index)."""
        wanted = set(topics)
        return sum(c.msgcount for c in self._reader.connections if c.topic in wanted)

    @property
    def start_ns(self) -> int:
        return int(self._reader.start_time)

    @property
    def end_ns(self) -> int:
        return int(self._reader.end_time)

    @property
    def duration_s(self) -> float:
        return max(0, self.end_ns - self.start_ns) * 1e-9

    def message_class(self, topic: str):
        """The rclpy class of ``topic``'s messages.

        :raises BagError: naming the topic when its type is not installed.
        """
        msgtype = self.topics[topic]
        if msgtype not in self._classes:
            try:
                self._classes[msgtype] = message_class(msgtype)
            except BagError as exc:
                raise BagError(f'{self.path}: topic {topic}: {exc}') from None
        return self._classes[msgtype]

    def messages(self, topics: Iterable[str]) -> Iterator[tuple[str, int, object]]:
        """``(topic, log time [ns], message)`` of ``topics`` in log-time order.

        :raises BagError: for a type that is not installed, a message that does not
            deserialise, or a bag cut short.
        """
        wanted = set(topics)
        connections = [c for c in self._reader.connections if c.topic in wanted]
        classes = {c.id: self.message_class(c.topic) for c in connections}
        iterator = self._reader.messages(connections=connections)
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except Exception as exc:    # a chunk cut short or corrupt
                raise BagError(f'{self.path}: the bag is truncated or damaged: '
                               f'{type(exc).__name__}: {exc}') from None
            connection, log_ns, raw = item
            try:
                msg = deserialize_message(bytes(raw), classes[connection.id])
            except Exception as exc:
                raise BagError(f'{self.path}: topic {connection.topic}: a message does not '
                               f'read as {connection.msgtype}: {exc}') from None
            yield connection.topic, int(log_ns), msg

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> 'BagReader':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""A typed client of the memory's services, for planners, tools and tests.

    client = MemoryClient(node)                   # any rclpy node you already spin
    response = client.recall(text='mug', k=3)     # Recall.Response; raises on timeouts
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator
from typing import Sequence

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node

from engram_ros.ros.conversions import common
from engram_ros.ros.conversions import memory as conversions
from engram_ros.srv import Consolidate
from engram_ros.srv import EditEngram
from engram_ros.srv import Feedback
from engram_ros.srv import ForgetEngrams
from engram_ros.srv import GetEngrams
from engram_ros.srv import GetPlaces
from engram_ros.srv import ListEngrams
from engram_ros.srv import Recall


class MemoryClient:
    """Calls ``engram/recall``, ``engram/consolidate`` and the governance services
    (``engram/list``, ``engram/get``, ``engram/edit``, ``engram/forget``), ``engram/feedback``
    and ``engram/places`` of a memory node.

    The node must be spun by an executor in another thread (or the caller's), as for any
    rclpy client; calls block the calling thread until the answer arrives.
    """

    def __init__(self, node: Node, namespace: str = '') -> None:
        prefix = namespace.rstrip('/') + '/' if namespace else ''
        self.node = node
        self.recall_client = node.create_client(Recall, f'{prefix}engram/recall')
        self.consolidate_client = node.create_client(Consolidate, f'{prefix}engram/consolidate')
        self.list_client = node.create_client(ListEngrams, f'{prefix}engram/list')
        self.get_client = node.create_client(GetEngrams, f'{prefix}engram/get')
        self.edit_client = node.create_client(EditEngram, f'{prefix}engram/edit')
        self.forget_client = node.create_client(ForgetEngrams, f'{prefix}engram/forget')
        self.feedback_client = node.create_client(Feedback, f'{prefix}engram/feedback')
        self.places_client = node.create_client(GetPlaces, f'{prefix}engram/places')

    def wait_for_services(self, timeout: float = 10.0) -> None:
        """:raises RuntimeError: when the memory's services do not appear within ``timeout``."""
        for client in (self.recall_client, self.consolidate_client, self.list_client,
                       self.get_client, self.edit_client, self.forget_client,
                       self.feedback_client, self.places_client):
            if not client.wait_for_service(timeout_sec=timeout):
                raise RuntimeError(f'service {client.srv_name} not available after {timeout} s; '
                                   'is the memory node running (same ROS_DOMAIN_ID)?')

    def recall(self, *, timeout: float = 10.0, **query) -> Recall.Response:
        """Ask the memory; ``query`` takes the keywords of :meth:`make_recall_request`.

        :raises RuntimeError: when the service is missing or does not answer in ``timeout``.
        """
        return self.call(self.recall_client, self.make_recall_request(**query), timeout)

    @staticmethod
    def make_recall_request(*, text: str = '', tags_all: Sequence[str] = (),
                            tags_any: Sequence[str] = (), tags_none: Sequence[str] = (),
                            vector: np.ndarray | None = None,
                            center: Sequence[float] | None = None, radius: float = 0.0,
                            frame_id: str = '', start: float = 0.0, end: float = 0.0,
                            kinds: Sequence[str] = (), k: int = 10,
                            min_score: float = 0.0,
                            include_vectors: bool = False, at_time: float = 0.0,
                            changed_since: float = 0.0, compact: bool = False,
                            scope: int = Recall.Request.SCOPE_ROBOT,
                            robots: Sequence[str] = ()) -> Recall.Request:
        """Build a Recall request; times are seconds since the epoch (0 = open/unset).

        ``compact``: a planner's answer, without vectors, evidence URIs, pose covariances and
        the per-stage scores (``Recall.srv``), smaller and cheaper to build and read.

        ``at_time``: "where was it then" (beliefs current at that time, history included);
        ``changed_since``: "what changed since" (beliefs begun or ended since then).

        ``scope``: ``Recall.Request.SCOPE_*``, whose memory answers (this robot's by default;
        ``SCOPE_ROBOTS`` with ``robots`` named, ``SCOPE_FLEET`` for every robot).
        """
        request = conversions.fill_where(Recall.Request(), kinds, tags_all, tags_any, tags_none,
                                         center, radius, frame_id, start, end)
        request.text = text
        if vector is not None:
            request.query_vector = np.asarray(vector, dtype=np.float32)
        request.k = int(k)
        request.min_score = float(min_score)
        request.include_vectors = bool(include_vectors)
        request.compact = bool(compact)
        request.at_time = common.seconds_to_time(at_time)
        request.changed_since = common.seconds_to_time(changed_since)
        request.scope = int(scope)
        request.robots = [str(r) for r in robots]
        return request

    def feedback(self, ids: Sequence[int], helped: bool, *, requester: str = '',
                 timeout: float = 10.0) -> Feedback.Response:
        """Say whether the engrams ``ids`` (e.g. a recall's answer) helped."""
        request = Feedback.Request(ids=[int(i) for i in ids], helped=bool(helped),
                                   requester=requester)
        return self.call(self.feedback_client, request, timeout)

    def places(self, *, include_objects: bool = False, requester: str = '',
               timeout: float = 10.0) -> GetPlaces.Response:
        """The place graph: places, traversal edges, optionally the anchored engrams."""
        request = GetPlaces.Request(include_objects=bool(include_objects), requester=requester)
        return self.call(self.places_client, request, timeout)

    def consolidate(self, *, dry_run: bool = False, timeout: float = 30.0,
                    request: Consolidate.Request | None = None) -> Consolidate.Response:
        request = request or Consolidate.Request()
        request.dry_run = dry_run
        return self.call(self.consolidate_client, request, timeout)

    def list_engrams(self, *, offset: int = 0, limit: int = 0, include_vectors: bool = False,
                     requester: str = '', timeout: float = 10.0,
                     **selection) -> ListEngrams.Response:
        """One page of engrams; ``selection`` takes the keywords of :meth:`fill_selection`."""
        request = self.fill_selection(ListEngrams.Request(), **selection)
        request.offset, request.limit = int(offset), int(limit)
        request.include_vectors = bool(include_vectors)
        request.requester = requester
        return self.call(self.list_client, request, timeout)

    def get_engrams(self, ids: Sequence[int], *, include_vectors: bool = False,
                    requester: str = '', timeout: float = 10.0) -> GetEngrams.Response:
        request = GetEngrams.Request(ids=[int(i) for i in ids],
                                     include_vectors=bool(include_vectors), requester=requester)
        return self.call(self.get_client, request, timeout)

    def edit_engram(self, engram_id: int, *, add_tags: Sequence[str] = (),
                    remove_tags: Sequence[str] = (), label: str | None = None,
                    pinned: bool | None = None, requester: str = '',
                    timeout: float = 10.0) -> EditEngram.Response:
        """Edit one engram; ``label=None`` keeps it, ``pinned=None`` keeps the pin."""
        request = EditEngram.Request(id=int(engram_id), add_tags=list(add_tags),
                                     remove_tags=list(remove_tags), requester=requester)
        request.set_label = label is not None
        request.label = label or ''
        request.pin = {None: EditEngram.Request.PIN_KEEP, True: EditEngram.Request.PIN,
                       False: EditEngram.Request.UNPIN}[pinned]
        return self.call(self.edit_client, request, timeout)

    def forget_engrams(self, ids: Sequence[int] = (), *, dry_run: bool = False,
                       requester: str = '', fleet: bool = False, timeout: float = 30.0,
                       **selection) -> ForgetEngrams.Response:
        """Forget by ids and/or a selection (keywords of :meth:`fill_selection`); ``fleet``:
        also in the fleet collection (see ``srv/ForgetEngrams.srv``)."""
        request = self.fill_selection(ForgetEngrams.Request(), **selection)
        request.ids = [int(i) for i in ids]
        request.dry_run = bool(dry_run)
        request.fleet = bool(fleet)
        request.requester = requester
        return self.call(self.forget_client, request, timeout)

    @staticmethod
    def fill_selection(request, *, kinds: Sequence[str] = (), tags_all: Sequence[str] = (),
                       tags_any: Sequence[str] = (), tags_none: Sequence[str] = (),
                       center: Sequence[float] | None = None, radius: float = 0.0,
                       frame_id: str = '', start: float = 0.0, end: float = 0.0,
                       tier: str = '', pinned: bool | None = None):
        """Fill the filter fields of a ListEngrams or ForgetEngrams request (times in epoch s,
        0 = open; ``pinned=None`` accepts both)."""
        conversions.fill_where(request, kinds, tags_all, tags_any, tags_none, center, radius,
                               frame_id, start, end)
        request.tier = tier
        request.pinned = {None: 0, True: 1, False: 2}[pinned]
        return request

    def call(self, client, request, timeout: float):
        """Call ``client`` and wait for the response.

        :raises RuntimeError: when the service is missing or does not answer in ``timeout``.
        """
        if not client.wait_for_service(timeout_sec=timeout):
            raise RuntimeError(f'service {client.srv_name} not available after {timeout} s')
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            client.remove_pending_request(future)
            raise RuntimeError(f'service {client.srv_name} did not answer within {timeout} s')
        return future.result()


@contextlib.contextmanager
def spinning_node(name: str) -> Iterator[Node]:
    """Initialise rclpy, create ``name`` and spin it in a background thread until exit.

    Shuts down in the order that lets the spin thread finish before anything is destroyed.
    """
    rclpy.init()
    node = rclpy.create_node(name)
    executor = SingleThreadedExecutor()
    executor.add_node(node)

    def spin() -> None:
        try:
            executor.spin()
        except ExternalShutdownException:
            pass

    thread = threading.Thread(target=spin, name=f'{name}_spin', daemon=True)
    thread.start()
    try:
        yield node
    finally:
        executor.shutdown()
        thread.join(timeout=5.0)
        node.destroy_node()
        rclpy.try_shutdown()


"""Fleet memory (issue 15): this robot's link to a shared Milvus collection and its sync.

* :mod:`.ids`: fleet-unique engram ids (a robot index registered in the collection, shifted
  above the robot's local id).
* :mod:`.link`: :class:`~.link.FleetLink`, the connection (opened lazily on the sync thread,
  retried with backoff, refused for good on an encoder/dimension/schema mismatch).
* :mod:`.sync`: :class:`~.sync.FleetSync`, which uploads this robot's new and changed
  engrams, deletes what it forgot, and keeps a bounded backlog while the fleet is away.

Nothing here imports ROS.
"""

"""Fleet memory (issue 15): many robots sharing one Milvus collection. One concept per module.

On each robot (the memory node's sync thread):

* :mod:`.ids`: fleet-unique engram ids (a robot index registered in the collection, shifted
  above the robot's local id).
* :mod:`.link`: :class:`~.link.FleetLink`, the connection (opened lazily on the sync thread,
  retried with backoff, refused for good on an encoder/dimension/schema mismatch).
* :mod:`.sync`: :class:`~.sync.FleetSync`, which uploads this robot's new and changed
  engrams, deletes what it forgot, and keeps a bounded backlog while the fleet is away.

Upkeep of the shared collection (``engram fleet consolidate|forget``):

* :mod:`.lease`: one consolidator at a time (an OS lock and a lease record with a fencing
  token).
* :mod:`.consolidate`: duplicates seen by two robots merged once, moves seen by one robot
  ending another's belief; :mod:`.provenance` keeps what each merged engram was made of.
* :mod:`.forget`: a forget that reaches the fleet collection, compacts it and is audited by
  the node that asked.

In a recall (the robot's Recall with a scope):

* :mod:`.view`: :class:`~.view.FleetView`, what a robot's memory needs of the fleet to answer
  a fleet-scoped recall, and the robot id rule (:func:`~.view.robot_id_from_namespace`).

Nothing here imports ROS.
"""

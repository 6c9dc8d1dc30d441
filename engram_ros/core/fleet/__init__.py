"""Fleet memory (issue 15): many robots sharing one Milvus collection.

Each module is one concept: :mod:`.lease` (one consolidator at a time: an OS lock and a lease
record with a fencing token), :mod:`.consolidate` (duplicates seen by two robots merged once,
moves seen by one robot ending another's belief), :mod:`.forget` (a forget that reaches the
fleet collection, compacts it and is audited by the node that asked). Nothing here imports ROS.
"""

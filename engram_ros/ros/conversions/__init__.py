"""Every translation between ROS messages and engram_ros's plain-Python objects, in one package.

The split follows what a message carries, not which node uses it:

* :mod:`.common`: time stamps, poses and headers, and the diagnostics every node publishes;
* :mod:`.memory`: the memory's interface (``Observation``, ``Engram``, ``KeyframeCorrection``
  and the Recall, Consolidate, governance, Feedback and GetPlaces services) <-> core objects;
* :mod:`.sensors`: sensor messages (images, camera info, odometry, audio, detections) <->
  arrays, both ways: perception reads them, the simulator and the tests publish them.

The memory node, the perception node, the simulator node, the client and the CLI build and read
messages only through these modules; nothing else fills a message field by field. Every
function is a plain translation: no validation beyond what a type conversion needs (the core
validates), no state. ``memory`` and ``common`` import no OpenCV; ``sensors`` does.
"""

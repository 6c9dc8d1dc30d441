"""Perception: camera, depth, pose, audio and detections in, encoded observations out.

ROS-free, one module per idea:

* :mod:`.errors` - :class:`InputRejected`, the one way bad input is refused (with a reason key);
* :mod:`.compressed` - image_transport's ``compressed`` colour and ``compressedDepth`` depth;
* :mod:`.class_names` - a detector's numeric class ids -> labels (``class_names`` file);
* :mod:`.geometry` - poses, intrinsics, camera extrinsics, back-projection into the map frame;
* :mod:`.pose_buffer` - robot poses by time, interpolated at a sensor stamp;
* :mod:`.sync` - approximate-time synchronisation of several inputs by stamp;
* :mod:`.keyframe` - when a camera frame is worth a new place observation;
* :mod:`.visual` - image -> context vector (ORB bag of words + colour/layout + torch compressor,
  or a pluggable learned backbone) and visual words;
* :mod:`.objects` - detection + depth + pose -> 3D position, extent, colour, size class;
* :mod:`.audio` - segmentation, log-mel embedding, sound event classifier;
* :mod:`.sounds`, :mod:`.scenes` - procedural sounds and images the shipped models are built from;
* :mod:`.text` - free-text query vectors (offline sentence model);
* :mod:`.evidence` - writing crops, frames and clips;
* :mod:`.pipeline` - ties them together: what the perception node calls.
"""

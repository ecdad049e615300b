"""The runtime core of the off-road perception stack: what the robot runs, with no ROS and no torch.

Ontology, model contract, camera model, image codecs, inference engine, evaluator, atomic
writes, provenance, the parameter-spec mechanism, and the rclpy-free per-frame pipelines of the
two nodes (:mod:`offroad_core.segmentation`, :mod:`offroad_core.costmap`). Needs numpy, OpenCV,
onnx and onnxruntime (plus onnxruntime-qnn for the NPU). ROS imports, where a helper needs one
(parameter descriptors), happen lazily inside that function.
"""

__version__ = "0.1.0"

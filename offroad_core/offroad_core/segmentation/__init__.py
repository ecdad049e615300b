"""rclpy-free core of the segmentation node: parameters, per-frame pipeline, overlay."""

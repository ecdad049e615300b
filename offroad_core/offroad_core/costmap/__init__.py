"""rclpy-free core of the costmap node: parameters, categories, grid, projection, fusion, and the
per-frame pipeline that ties them together."""

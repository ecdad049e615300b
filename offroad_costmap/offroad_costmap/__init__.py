"""Traversability labels to a Nav2 OccupancyGrid: a thin rclpy shell over a pure projection core."""

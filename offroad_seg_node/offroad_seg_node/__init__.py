"""Camera image to traversability labels: a thin rclpy shell over the offroad_training engine."""

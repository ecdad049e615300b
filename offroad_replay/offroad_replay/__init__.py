"""Everything that reads or plays a rosbag2: the replay node, offline bag evaluation and the
scoring shared with the demo's live stage."""

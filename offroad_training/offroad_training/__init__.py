"""Off-road perception core: ontology, datasets, training, evaluation and deployment.

No ROS import anywhere in this package. The runtime core that the ROS nodes share
(:mod:`ontology`, :mod:`contract`, :mod:`camera`, :mod:`imaging`, :mod:`engine`) needs only
numpy, OpenCV and onnxruntime; training and export need the ``train`` extra (torch).
"""

__version__ = "0.1.0"

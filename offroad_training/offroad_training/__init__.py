"""Off-road perception model factory: datasets, synthetic world, training, export, quantization,
compilation and the ``offroad`` command.

No ROS import anywhere in this package. It builds on the runtime core :mod:`offroad_core`
(ontology, contract, camera, imaging, engine, evaluator) and never the reverse; training and
export need the ``train`` extra (torch).
"""

__version__ = "0.1.0"

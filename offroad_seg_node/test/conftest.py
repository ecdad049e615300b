"""Make ``offroad_seg_node`` resolve to the package, not to the ament package directory.

pytest's ``--import-mode=importlib`` names this directory's modules ``offroad_seg_node.test.*``
and registers the enclosing directory ``offroad_seg_node/`` as a namespace module of that name,
which hides the real Python package ``offroad_seg_node/offroad_seg_node``. Replace it.
"""

import importlib
import sys

_module = sys.modules.get("offroad_seg_node")
if _module is not None and getattr(_module, "__file__", None) is None:
    del sys.modules["offroad_seg_node"]
    _real = importlib.import_module("offroad_seg_node")
    for _name in ("test", "conftest"):
        if hasattr(_module, _name):
            setattr(_real, _name, getattr(_module, _name))

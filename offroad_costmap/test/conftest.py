"""Make ``offroad_costmap`` resolve to the package, not to the ament package directory.

pytest's ``--import-mode=importlib`` names this directory's modules ``offroad_costmap.test.*``
and registers the enclosing directory ``offroad_costmap/`` as a namespace module of that name,
which hides the real Python package ``offroad_costmap/offroad_costmap``. Replace it.
"""

import importlib
import sys

_module = sys.modules.get("offroad_costmap")
if _module is not None and getattr(_module, "__file__", None) is None:
    del sys.modules["offroad_costmap"]
    _real = importlib.import_module("offroad_costmap")
    for _name in ("test", "conftest"):
        if hasattr(_module, _name):
            setattr(_real, _name, getattr(_module, _name))

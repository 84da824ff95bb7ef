"""The project's main job, ``mdm-energy demo``: :func:`run_demo` computes, :mod:`.render` presents.

* :mod:`.compute` — every number of the demo as typed results (:class:`DemoResult`), no printing or files;
* :mod:`.render` — the text report, the figures and ``demo.json``.
"""

from .compute import DemoResult, RealTaskCell, RealTaskTable, ToyTarget, run_demo
from .render import DemoFiles, demo_text, write_demo

__all__ = ["DemoResult", "ToyTarget", "RealTaskCell", "RealTaskTable", "run_demo", "demo_text", "write_demo", "DemoFiles"]

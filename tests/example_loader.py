"""Import an example script (``examples/<name>.py``) as a module, for the example tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# The scripts import their shared helper ``_cli`` from beside them, as `python examples/x.py` does.
if str(EXAMPLES) not in sys.path:
    sys.path.append(str(EXAMPLES))


def load(name: str) -> ModuleType:
    """Execute ``examples/<name>.py`` as module ``name`` (registered in ``sys.modules``)."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module

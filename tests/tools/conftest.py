"""Unit tests of the lab (tools/lab and tools/sluice-sweep): pure functions
and small fakes, no server, no timing. Run by `make tools-test` (part of
`make test`)."""

import importlib.machinery
import importlib.util
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(REPO, "tools")
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)


def load_script(name):
    """tools/NAME (a script without .py) as a module."""
    path = os.path.join(TOOLS, name)
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), path)
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def sweep():
    return load_script("sluice-sweep")


@pytest.fixture(scope="session")
def bench():
    return load_script("sluice-bench")

"""Every example in the library's docstrings runs and prints what it says (``doctest``, per module)."""

import doctest
import importlib
import pkgutil
import sys

import pytest

import adaptx

MODULES = sorted(
    m.name for m in pkgutil.walk_packages(adaptx.__path__, "adaptx.") if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    importlib.import_module(name)
    module = sys.modules[name]  # the module itself, even where a package re-exports a same-named function
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, report=False, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples failed in {name}"


def test_the_public_modules_have_examples():
    """A guard on the test above: it would pass vacuously if it found no module or no example."""
    attempted = 0
    for name in MODULES:
        importlib.import_module(name)
        attempted += len(doctest.DocTestFinder().find(sys.modules[name]))
    assert len(MODULES) > 20 and attempted > 50

"""The ``adaptx`` command's persistent compilation cache: on by default in the user's cache folder, off
with ``--no-compile-cache`` or ``ADAPTX_COMPILE_CACHE=0``, jax's own cache folder kept when set; the
library itself changes no jax setting. Fresh processes, since jax's settings are per process."""

from __future__ import annotations

import os

import jax
import pytest
from harness import run_python

import adaptx.experiments  # noqa: F401  (importing it must leave jax's settings alone)
from adaptx.cli import use_compile_cache

RUN = ("from adaptx.cli import main; raise SystemExit(main(['reddi', '--setting', 'online', '--optimizers', "
       "'adam', '--steps', '100', '--log-points', '3', '--format', 'csv', '--no-plot', '--quiet', "
       "'--out', {out!r}{extra}]))")


def files_under(folder) -> list[str]:
    return [os.path.join(d, f) for d, _, names in os.walk(folder) for f in names]


def test_the_cache_is_in_the_user_cache_folder(tmp_path):
    res = run_python(RUN.format(out=str(tmp_path / "r"), extra=""), XDG_CACHE_HOME=str(tmp_path / "cache"),
                     ADAPTX_COMPILE_CACHE=None, ADAPTX_CACHE_DIR=None, JAX_COMPILATION_CACHE_DIR=None)
    assert res.returncode == 0, res.stderr[-3000:]
    assert files_under(tmp_path / "cache" / "adaptx" / "jax")  # the compiled programs


def test_the_cache_can_be_turned_off(tmp_path):
    res = run_python(RUN.format(out=str(tmp_path / "r"), extra=", '--no-compile-cache'"),
                     XDG_CACHE_HOME=str(tmp_path / "cache"), ADAPTX_COMPILE_CACHE=None,
                     ADAPTX_CACHE_DIR=None, JAX_COMPILATION_CACHE_DIR=None)
    assert res.returncode == 0, res.stderr[-3000:]
    assert not (tmp_path / "cache").exists()


def test_jax_own_cache_folder_is_kept(tmp_path):
    res = run_python(RUN.format(out=str(tmp_path / "r"), extra=""), XDG_CACHE_HOME=str(tmp_path / "cache"),
                     JAX_COMPILATION_CACHE_DIR=str(tmp_path / "mine"), ADAPTX_COMPILE_CACHE=None,
                     ADAPTX_CACHE_DIR=None, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    assert res.returncode == 0, res.stderr[-3000:]
    assert files_under(tmp_path / "mine") and not (tmp_path / "cache").exists()


@pytest.mark.skipif("JAX_COMPILATION_CACHE_DIR" in os.environ, reason="jax's cache is set for this process")
def test_the_environment_turns_it_off_and_the_library_leaves_jax_alone(monkeypatch):
    assert not jax.config.jax_compilation_cache_dir  # importing adaptx set nothing
    for value in ("0", "off", "no", "false"):
        monkeypatch.setenv("ADAPTX_COMPILE_CACHE", value)
        assert use_compile_cache(True) is None
    monkeypatch.delenv("ADAPTX_COMPILE_CACHE")
    assert use_compile_cache(False) is None
    assert not jax.config.jax_compilation_cache_dir

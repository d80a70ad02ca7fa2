"""JAX's persistent compilation cache, on by default for every command-line tool.

Compiling the training chunk of an MJX task takes minutes on a CPU and tens of seconds on a GPU;
with the cache a second run, a resume, ``evaluate`` and ``render`` of an already-compiled config
load the executables from disk instead. The directory is, in order of precedence:
``$MJX_QVPO_CACHE_DIR``, JAX's own ``$JAX_COMPILATION_CACHE_DIR`` (or a directory already set in
``jax.config``, as the test suite does), else ``$XDG_CACHE_HOME/mjx_qvpo/jax`` (default
``~/.cache/mjx_qvpo/jax``). ``--no-compile-cache`` on any tool switches it off.
"""

from __future__ import annotations

import os
from typing import Mapping

import jax

ENV_VAR = "MJX_QVPO_CACHE_DIR"
FLAG = "--no-compile-cache"


def default_dir(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_CACHE_HOME/mjx_qvpo/jax``, or ``~/.cache/mjx_qvpo/jax`` without XDG_CACHE_HOME."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mjx_qvpo", "jax")


def enable(disabled: bool = False, environ: Mapping[str, str] | None = None) -> str | None:
    """Point JAX's persistent compilation cache at its directory (see the module docstring) and
    return it, or switch the cache off and return None. Call before the first compilation."""
    env = os.environ if environ is None else environ
    if disabled:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    path = env.get(ENV_VAR) or jax.config.jax_compilation_cache_dir or default_dir(env)
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", path)
    return path

"""JAX's persistent compilation cache, on by default for every command-line tool.

Compiling the training chunk of an MJX task takes minutes on a CPU and tens of seconds on a GPU;
with the cache a second run, a resume, ``evaluate`` and ``render`` of an already-compiled config
load the executables from disk instead. The directory is, in order of precedence:
``$MJX_QVPO_CACHE_DIR``, JAX's own ``$JAX_COMPILATION_CACHE_DIR`` (or a directory already set in
``jax.config``, as the test suite does), else ``$XDG_CACHE_HOME/mjx_qvpo/jax/<host>`` (default
``~/.cache/mjx_qvpo/jax/<host>``, one folder per CPU type). ``--no-compile-cache`` on any tool
switches it off.

The cache skips XLA's compilation, not JAX's tracing and lowering of the Python code, which the
training log reports apart. On CPUs whose LLVM tuning adds ``+prefer-no-gather`` (e.g. AMD Zen 4)
jaxlib 0.9.2 logs an error line ``Loading XLA:CPU AOT result. Target machine feature ...`` at each
load of a cached executable; the executable is still used (jax-ml/jax#38445).

``compile_all`` compiles several lowered programs (the training chunk and the evaluation) at once
in threads on the CPU: XLA compiles with the GIL released, so on a 2-core CPU the two compiles
overlap.
"""

from __future__ import annotations

import hashlib
import os
import platform
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping, Sequence

import jax

ENV_VAR = "MJX_QVPO_CACHE_DIR"
FLAG = "--no-compile-cache"


def host_tag() -> str:
    """``<machine>-<hash of the CPU model and flags>``. JAX's cache key names the backend but not
    the CPU's instruction set, and XLA:CPU loads a cached executable built for other CPU
    features with only a logged error (jax-ml/jax#38445): a home directory shared by different
    hosts must not share CPU executables."""
    ident = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            ident += "".join(sorted({line for line in f
                                     if line.startswith(("model name", "flags"))}))
    except OSError:
        ident += platform.processor()
    return f"{platform.machine()}-{hashlib.sha1(ident.encode()).hexdigest()[:10]}"


def default_dir(environ: Mapping[str, str] | None = None) -> str:
    """``$XDG_CACHE_HOME/mjx_qvpo/jax/<host_tag>``, or the same under ``~/.cache`` without
    XDG_CACHE_HOME."""
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mjx_qvpo", "jax", host_tag())


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


def compile_all(lowered: Sequence[Any], parallel: bool | None = None) -> list:
    """``[x.compile() for x in lowered]``, on the CPU with the compiles in one thread each. The
    executables are the ones the loop would give (same HLO, same compiler, same cache keys); only
    the wall time changes: XLA compiles with the GIL released, so the training chunk and the
    evaluation, two independent programs, compile side by side instead of one after the other.
    ``parallel`` None means threads on the CPU backend only: XLA:GPU times candidate kernels on
    the device while compiling (autotuning), and two compiles doing that at once could disturb
    each other's timings and so pick other kernels; it also compiles in parallel internally."""
    if parallel is None:
        parallel = jax.default_backend() == "cpu"
    if len(lowered) <= 1 or not parallel:
        return [x.compile() for x in lowered]
    with ThreadPoolExecutor(max_workers=len(lowered)) as pool:
        return list(pool.map(lambda x: x.compile(), lowered))

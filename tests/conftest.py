"""Shared test fixtures. The `slow` marker is registered in pyproject.toml."""
import os
import subprocess
import sys

import pytest

# Tests are compile-bound (MJX physics on the CPU) and their workloads are tiny: skip XLA's costly
# LLVM optimizations in this process too (about a third less compile time). Set before any test
# module imports JAX; a user's own XLA_FLAGS win.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0 "
                                   "--xla_llvm_disable_expensive_passes=true")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session", autouse=True)
def compile_cache(tmp_path_factory):
    """A JAX persistent compilation cache shared by this test process and the CLI subprocesses of
    one test session: a resumed or repeated run with the same shapes then does not pay the
    (minutes-long, on CPU) compilation again."""
    import jax
    path = str(tmp_path_factory.mktemp("jax_cache"))
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    # The tools' own cache (mjx_qvpo.compile_cache) prefers this variable: tests in this process
    # that call a tool's main() must not write to the user's ~/.cache either.
    os.environ["MJX_QVPO_CACHE_DIR"] = path
    return path


def cli_env(cache_dir: str, **extra) -> dict:
    """Environment of a CLI subprocess: the given compile cache, unbuffered output, fast XLA."""
    # Most of a CLI test's time is XLA compiling MJX physics on the CPU; these flags skip the
    # costly LLVM optimizations (about a third less compile CPU time for humanoid) and the tiny
    # workloads do not notice the slower code.
    env = dict(os.environ, JAX_COMPILATION_CACHE_DIR=cache_dir, MJX_QVPO_CACHE_DIR=cache_dir,
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5", PYTHONUNBUFFERED="1",
               XLA_FLAGS="--xla_backend_optimization_level=0 "
                         "--xla_llvm_disable_expensive_passes=true")
    env.update(extra)
    return env


@pytest.fixture
def run_cli(compile_cache):
    """Run ``python -m <module> args...`` from the repository root; returns the CompletedProcess."""
    def run(module, *args, timeout=900):
        return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT,
                              env=cli_env(compile_cache), capture_output=True, text=True,
                              timeout=timeout)
    return run

"""Where the tools' persistent compilation cache lives, and switching it off (no compilation)."""

import jax

from mjx_qvpo import compile_cache


def test_cache_directory_precedence_and_off_switch(tmp_path):
    saved = (jax.config.jax_compilation_cache_dir, jax.config.jax_enable_compilation_cache)
    try:
        tag = compile_cache.host_tag()
        assert compile_cache.default_dir({"XDG_CACHE_HOME": "/x"}) == f"/x/mjx_qvpo/jax/{tag}"
        assert compile_cache.default_dir({}).endswith(f"/.cache/mjx_qvpo/jax/{tag}")
        # Our variable wins over a directory JAX already has (its env var or an earlier setting).
        ours = str(tmp_path / "ours")
        assert compile_cache.enable(environ={"MJX_QVPO_CACHE_DIR": ours}) == ours
        assert jax.config.jax_compilation_cache_dir == ours
        assert compile_cache.enable(environ={}) == ours  # JAX's own setting is kept
        assert compile_cache.enable(disabled=True, environ={}) is None
        assert not jax.config.jax_enable_compilation_cache
    finally:
        jax.config.update("jax_compilation_cache_dir", saved[0])
        jax.config.update("jax_enable_compilation_cache", saved[1])


def test_compile_all_returns_each_program_compiled_in_order():
    """The threaded compile hands back one executable per lowered program, in the given order,
    each computing what its own jit computes."""
    import jax.numpy as jnp

    x = jnp.arange(6.0).reshape(2, 3)
    fns = [lambda v: v * 2.0, lambda v: jnp.sin(v).sum(axis=0), lambda v: v.T @ v]
    for parallel in (None, True, False):  # None: threads on the CPU backend
        compiled = compile_cache.compile_all([jax.jit(f).lower(x) for f in fns], parallel)
        assert len(compiled) == 3
        for f, c in zip(fns, compiled):
            assert c(x).shape == jax.jit(f)(x).shape
            assert jnp.allclose(c(x), jax.jit(f)(x))
    assert compile_cache.compile_all([]) == []

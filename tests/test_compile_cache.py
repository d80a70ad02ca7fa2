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

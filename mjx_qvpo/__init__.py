"""mjx_qvpo: QVPO (diffusion-policy online RL) on MuJoCo MJX, with the learner and N environments in one compiled training step."""


def load_policy(path: str, num_samples: int | None = None):
    """A jittable ``policy(obs, key) -> action`` from a file written by ``python -m
    mjx_qvpo.export`` (see ``mjx_qvpo.export.load_policy``). Imported lazily, so that importing
    the package stays cheap."""
    from mjx_qvpo.export import load_policy as _load
    return _load(path, num_samples)

"""Experiments that reproduce the paper's claims (docs/algorithm.md section 8) as measurements.

* :mod:`mjx_qvpo.experiments.bandit`: the continuous bump bandit, with and without the diffusion
  entropy term, many seeds vmapped inside one compiled call.
* :mod:`mjx_qvpo.experiments.ablate`: a grid of trainer variants x seeds on one task (seeds vmapped
  over the real trainer's ``init`` and ``chunk``), learning curves and a table of final returns.

Both share the command-line conventions of ``mjx_qvpo.train``: ``--config FILE`` plus
``--config.field=value`` overrides; bad input is one line on stderr and exit status 2.
"""

"""Devices and hosts: which devices a run uses, how its state is laid out on them, and moving it
between devices and the host (docs/algorithm.md section 7, scaled out).

Data parallelism with JAX's own sharding: a 1-D ``Mesh`` over the run's devices (axis
``AXIS``). The N environments, their states and the replay buffer's environment axis are split
evenly over it; networks, optimizer states, the normalizer, counters and the PRNG key are
replicated. The training chunk runs under ``jax.shard_map``; every update averages the gradients
over the axis (``pmean``), so the parameters stay identical on every device.

Several hosts: ``initialize()`` calls ``jax.distributed.initialize`` when the environment says
that the run spans processes; the mesh then covers every process's devices and the same compiled
program runs on each. Only process 0 writes logs, metrics and checkpoints.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from mjx_qvpo.config import ConfigError

AXIS = "devices"

_ENV_MULTIHOST = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


class DeviceError(ConfigError):
    """The requested device layout is impossible (the message names the field and the limits)."""


def initialize(environ=None) -> bool:
    """Join a multi-process run when the environment describes one; returns True if it did.

    Explicit form: ``JAX_COORDINATOR_ADDRESS=host:port JAX_NUM_PROCESSES=P JAX_PROCESS_ID=i``
    on every host. A SLURM or Open MPI launch with more than one task is detected by JAX itself.
    A single process does nothing. Must run before anything touches a device.
    """
    env = os.environ if environ is None else environ
    if env.get("JAX_COORDINATOR_ADDRESS"):
        missing = [v for v in _ENV_MULTIHOST[1:] if not env.get(v)]
        if missing:
            raise DeviceError(f"JAX_COORDINATOR_ADDRESS is set but {', '.join(missing)} "
                              f"{'is' if len(missing) == 1 else 'are'} not: set all of "
                              f"{', '.join(_ENV_MULTIHOST)} on every host")
        _cpu_collectives()
        jax.distributed.initialize(coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
                                   num_processes=int(env["JAX_NUM_PROCESSES"]),
                                   process_id=int(env["JAX_PROCESS_ID"]))
        return True
    if int(env.get("SLURM_NTASKS", "1")) > 1 or int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1:
        _cpu_collectives()
        jax.distributed.initialize()
        return True
    return False


def _cpu_collectives() -> None:
    """CPU devices of several processes talk through Gloo (GPUs use NCCL whatever this says)."""
    if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")


def resolve_num_devices(cfg) -> int:
    """Devices per process this run uses: ``cfg.num_devices``, or all local devices when 0."""
    local = jax.local_device_count()
    d = cfg.num_devices or local
    if d > local:
        raise DeviceError(f"config field 'num_devices' must be at most the {local} local "
                          f"{jax.default_backend()} device(s) of this process, or 0 for all; "
                          f"got {cfg.num_devices}")
    return d


def total_devices(cfg) -> int:
    """Devices over all processes (``num_devices`` on each)."""
    return resolve_num_devices(cfg) * jax.process_count()


def check_divisibility(cfg) -> None:
    """N and B are split evenly over the devices: say so before anything compiles."""
    d = total_devices(cfg)
    for name in ("num_envs", "batch_size"):
        v = getattr(cfg, name)
        if v % d:
            raise DeviceError(f"config field '{name}' ({v}) must be divisible by the number of "
                              f"devices ({d}); use a multiple of {d} or set num_devices")


def make_mesh(cfg) -> Mesh:
    """1-D mesh over the first ``num_devices`` local devices of every process."""
    per = resolve_num_devices(cfg)
    devices = [d for p in range(jax.process_count())
               for d in sorted((x for x in jax.devices() if x.process_index == p),
                               key=lambda x: x.id)[:per]]
    return Mesh(np.array(devices), (AXIS,))


def state_specs(state, sharded_fields: dict[str, int]) -> Any:
    """PartitionSpecs for a state pytree: leaves under a field named in ``sharded_fields`` are
    split over ``AXIS`` along the given dimension; all others are replicated."""
    def spec(path, leaf):
        top = getattr(path[0], "name", None) if path else None
        if top in sharded_fields and getattr(leaf, "ndim", 0) > sharded_fields[top]:
            dims = [None] * leaf.ndim
            dims[sharded_fields[top]] = AXIS
            return P(*dims)
        return P()
    return jax.tree_util.tree_map_with_path(spec, state)


def shardings(mesh: Mesh, specs) -> Any:
    """NamedShardings of a spec tree on ``mesh``."""
    return jax.tree.map(lambda s: NamedSharding(mesh, s), specs,
                        is_leaf=lambda x: isinstance(x, P))


def to_host(tree) -> Any:
    """Whole arrays as numpy on this host, also where other processes hold some shards (then
    every process must call this: it is a collective)."""
    if jax.process_count() == 1:
        return jax.device_get(tree)
    from jax.experimental import multihost_utils
    return jax.tree.map(lambda x: np.asarray(x) if x.is_fully_replicated
                        else multihost_utils.process_allgather(x, tiled=True), tree)


def from_host(tree, target_shardings) -> Any:
    """Place host arrays (the same on every process) onto the mesh with the given shardings."""
    return jax.tree.map(
        lambda x, s: jax.make_array_from_callback(np.shape(x), s, lambda idx: np.asarray(x)[idx]),
        tree, target_shardings)


def is_main_process() -> bool:
    """Process 0 logs, evaluates to disk and checkpoints."""
    return jax.process_index() == 0

"""Import MuJoCo MJX without its "Failed to import warp" lines.

``mujoco.mjx.warp`` (imported by every brax import through ``mujoco.mjx``) tries the optional
NVIDIA Warp backend and *prints* ``Failed to import warp: No module named 'warp'`` and the same
for ``mujoco_warp`` to stdout when Warp is not installed. This project never uses the Warp backend
(it runs MJX's JAX implementation), so those two lines are noise; being prints, not log records or
warnings, they can only be dropped by capturing stdout during that one import. Only those exact
missing-module lines are dropped: any other output, and a Warp that is installed but broken, still
shows.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys

_MISSING_WARP = re.compile(r"^Failed to import (warp|mujoco_warp): No module named 'warp'$")


def import_mjx_quietly() -> None:
    """Import ``mujoco.mjx`` once, dropping the two "Failed to import warp" lines it prints when
    the optional Warp package is absent. Call before the first brax import."""
    if "mujoco.mjx.warp" in sys.modules:
        return
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        import mujoco.mjx  # noqa: F401
    for line in buf.getvalue().splitlines():
        if not _MISSING_WARP.match(line):
            print(line)

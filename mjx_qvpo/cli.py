"""Shared pieces of the command-line front ends."""

from __future__ import annotations

import argparse

from mjx_qvpo.config import ConfigError


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors raise ``ConfigError``, which every ``main`` turns into one line
    on stderr and exit status 2, like every other bad input."""

    def error(self, message):
        raise ConfigError(f"{message} (see --help)")

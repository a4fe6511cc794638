"""SWIRL environments: benchmarks and simulators as state-only transition streams.

>>> import swirl_envs
>>> bench = swirl_envs.make_benchmark("textphysics")           # actions hidden
>>> env = swirl_envs.make("swirl/TextPhysics-v0")                # a Gymnasium env

Importing this package registers the built-in Gymnasium ids (`swirl/<Name>-v<N>`) and runs the installed
`swirl.envs` plugins' `register` functions, so that `gymnasium.make` knows their ids too (see
swirl_envs.registry); benchmark modules and data are imported only when a benchmark is built.
"""

from importlib import metadata as _metadata

from .benchmark import Benchmark
from .env import TransitionEnv, episodes_env
from .errors import DataError, SwirlError, UnknownNameError
from .registry import (
    benchmark_names,
    discover_plugins,
    get_spec,
    load_plugins,
    make,
    make_benchmark,
    make_env,
    register_benchmark,
)
from .spaces import UnicodeText
from .transition import Transition

__all__ = [
    "Benchmark", "DataError", "SwirlError", "Transition", "TransitionEnv", "UnicodeText", "UnknownNameError",
    "benchmark_names", "discover_plugins", "episodes_env", "get_spec", "load_plugins", "make", "make_benchmark",
    "make_env", "register_benchmark",
]
try:
    __version__ = _metadata.version("swirl-suite")
except _metadata.PackageNotFoundError:  # a source checkout that was never installed
    __version__ = "0+unknown"

# Last, once every name above exists: a plugin's register() may `import swirl_envs` and use them.
load_plugins()

"""StableToolBench / ToolBench: tool-use trajectories as world-model transitions, and a virtual API server.

X = the conversation so far (query, functions, earlier calls and responses), Z = the tool call
(`format_call`), Y = the API's response. See `loader` for the formats read and the split rule, `fetch`
for the public copies, `server` for the `/virtual` protocol and its cache, `env` for the interactive
tool-use environment.
"""

from .client import VirtualAPIClient
from .conversation import (
    api_function_name,
    change_name,
    format_call,
    parse_call,
    render_observation,
    render_state,
    standardize,
    standardize_category,
)
from .env import StableToolBench, ToolUseEnv
from .fetch import DEFAULT_REMOTE_FILES, RemoteFile, fetch_remote
from .loader import LoadReport, Task, bundled_data_dir, load_data, split_of
from .server import (
    VirtualAPI,
    VirtualAPIServer,
    cache_key,
    cache_location,
    fwm_simulator,
    make_server,
    serve,
)

__all__ = [
    "DEFAULT_REMOTE_FILES", "LoadReport", "RemoteFile", "StableToolBench", "Task", "ToolUseEnv", "VirtualAPI",
    "VirtualAPIClient", "VirtualAPIServer", "api_function_name", "bundled_data_dir", "cache_key",
    "cache_location", "change_name", "fetch_remote", "format_call", "fwm_simulator", "load_data",
    "make_server", "parse_call", "render_observation", "render_state", "serve", "split_of", "standardize",
    "standardize_category",
]

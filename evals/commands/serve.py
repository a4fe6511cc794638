"""`swirl-eval serve`: the StableToolBench API cache over HTTP, an FWM answering its misses."""

from __future__ import annotations

import argparse

from swirl_envs.errors import SwirlError

from ..leaderboard import EXIT_OK
from .common import UsageError, nonneg, port, positive


def cmd_serve(args: argparse.Namespace) -> int:
    if args.bench != "stabletoolbench":
        raise UsageError(f"serve supports --bench stabletoolbench only, got {args.bench!r}")
    try:
        from swirl_envs.stabletoolbench import server
    except ImportError as exc:
        raise SwirlError(f"the StableToolBench server is not available ({exc})") from None
    load_simulator = None  # the server itself warns when --host is not loopback
    if args.model:
        def load_simulator():  # after the port is bound: a busy port fails before the model loads
            from ..checkpoints import load_pair_entry

            entry = load_pair_entry("serve", args.model, seed=0, device=args.device)
            return server.fwm_simulator(entry.predictor.predict_next_states)
    server.serve(args.cache_dir, host=args.host, port=args.port, load_simulator=load_simulator,
                 max_simulations=args.max_simulations, max_waiting=args.max_waiting)
    return EXIT_OK


def register(add) -> None:
    """Add this group's subcommands; `add(name, help, examples)` returns a subparser."""
    p = add("serve", "serve cached StableToolBench API responses, simulating misses with an FWM",
            "  swirl-eval serve --bench stabletoolbench --port 8080 --cache-dir cache/\n"
            "  swirl-eval serve --bench stabletoolbench --port 8080 --cache-dir cache/ --model ckpt/stb-swirl\n")
    p.add_argument("--bench", default="stabletoolbench", help="only stabletoolbench serves")
    p.add_argument("--port", type=port, required=True, help="TCP port (0 = any free port)")
    p.add_argument("--cache-dir", required=True, help="folder of cached API responses")
    p.add_argument("--host", default="127.0.0.1", help="address to bind")
    p.add_argument("--model", default=None, help="FWM pair that answers cache misses")
    p.add_argument("--device", default="cpu", help="torch device for the model")
    p.add_argument("--max-simulations", type=positive, default=2,
                   help="cache misses the model answers at once (about one per core on a CPU)")
    p.add_argument("--max-waiting", type=nonneg, default=16,
                   help="misses that may wait for the model; beyond, 503 with Retry-After")
    p.set_defaults(func=cmd_serve)

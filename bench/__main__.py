"""Run every benchmark: `python -m bench` (full size) or `python -m bench --tiny`."""

from __future__ import annotations

import importlib

from bench.common import parse_args

BENCHES = ("tap_decision", "ingest", "tap_to_central", "gate_to_gate", "dismissal", "kiosk_memory", "scale_out", "notify", "city")


def main() -> None:
    args = parse_args(__doc__)
    for name in BENCHES:
        module = importlib.import_module(f"bench.{name}")
        module.run(**module.TINY) if args.tiny else module.run()


if __name__ == "__main__":
    main()

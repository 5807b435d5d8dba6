"""``python -m csadetect.cluster fetch|up|down|status [--dir DIR] [--slots N] [--no-kafka]``: the
local Flink cluster of ``make flink-deps``, ``make flink-up`` and ``make flink-down``.

``up`` prints the cluster's addresses and the PortableRunner flags to run the detection pipeline on
it; ``down`` stops, by PID, exactly the processes ``up`` started (their ports and PIDs are in
``DIR/cluster.json``)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from csadetect.cluster import artifacts
from csadetect.cluster.local import STATE_FILE, ClusterError, LocalCluster

DEFAULT_DIR = artifacts.REPO / ".flink"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m csadetect.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("fetch", "up", "down", "status"))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="the cluster's work folder (default: %(default)s)")
    parser.add_argument("--slots", type=int, default=2, help="task slots of the TaskManager (default: 2)")
    parser.add_argument("--no-kafka", action="store_true", help="do not start the Kafka broker")
    args = parser.parse_args(argv)
    state = args.dir / STATE_FILE
    try:
        if args.command == "fetch":
            artifacts.fetch_all(log=lambda line: print(line, file=sys.stderr))
            print(f"Flink {artifacts.FLINK_VERSION}, Beam {artifacts.BEAM_VERSION} job server, "
                  f"Kafka {artifacts.KAFKA_VERSION}: in {artifacts.cache_dir()}")
            return 0
        if args.command == "up":
            if state.exists() and LocalCluster.load(args.dir).running():
                print(f"a cluster is already running from {args.dir} (make flink-down first)", file=sys.stderr)
                return 1
            bad = artifacts.sdk_version_matches()
            if bad:
                print(bad, file=sys.stderr)
                return 2
            cluster = LocalCluster(args.dir, slots=args.slots).start(kafka=not args.no_kafka)
            print(json.dumps(cluster.describe(), indent=1))
            return 0
        if not state.exists():
            print(f"no cluster was started from {args.dir}", file=sys.stderr)
            return 0 if args.command == "down" else 1
        cluster = LocalCluster.load(args.dir)
        if args.command == "down":
            cluster.stop()
            print(f"stopped the cluster in {args.dir}")
            return 0
        print(json.dumps(cluster.describe(), indent=1))
        return 0 if cluster.running() else 1
    except (artifacts.MissingArtifact, ClusterError) as exc:
        print(str(exc), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

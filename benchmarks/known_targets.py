"""The targets table of the known-material benchmark's report (``benchmarks.bench_known``): ``RESULTS``,
the numbers the hashing, matching and end-to-end parts leave in it as they run, and ``targets_table``, the
issue's targets against them. The parts fill the one dict (they never rebind it), so it is shared by
importing it. ``bench_known`` re-exports every name.
"""
from __future__ import annotations

from benchmarks.known_common import table

__all__ = ["RESULTS", "targets_table"]

RESULTS: dict[str, dict] = {}  # numbers for the targets table


# --------------------------------------------------------------------------- targets


def targets_table() -> str:
    """The issue's targets against what this run measured."""
    rows = []

    def add(target, value, ok):
        rows.append([target, value, "met" if ok else "**not met**"])

    h = RESULTS.get("hashing")
    if h:
        add("hashing: >= 150 images/s on one core (plain hash_image)", f"{h['plain']:.0f}/s", h["plain"] >= 150)
        add("hashing: > 20x pytx", f"{h['plain'] / h['pytx']:.1f}x plain, {h['pipeline'] / h['pytx']:.1f}x with views",
            h["plain"] / h["pytx"] > 20)
        add("hashing: >= 0.75x the speed of full decoding alone", f"{h['plain'] / h['full']:.2f}x plain, "
            f"{h['pipeline'] / h['full']:.2f}x with views", h["plain"] / h["full"] >= 0.75)
        if h["conf_ref"] is not None:
            add("PDQ conformance: within 10 bits of Meta's reference (test vectors)",
                f"max {h['conf_ref']} bits (max {h['conf_pytx']} from pytx on the benchmark set)", h["conf_ref"] <= 10)
    for n, m in sorted(RESULTS.get("matching", {}).items()):
        label = f"{n / 1e6:g}M"
        if n >= 5_000_000:
            add(f"matching {label}: >= pytx's single-hash queries/s", f"{m['single'] / m['pytx']:.1f}x "
                f"({m['single']:,.0f} vs {m['pytx']:,.0f}/s); batch of 8: {m['batch8'] / m['pytx']:.1f}x",
                m["single"] >= m["pytx"])
        else:
            add(f"matching {label}: >= 10x pytx's single-hash queries/s", f"{m['single'] / m['pytx']:.1f}x "
                f"({m['single']:,.0f} vs {m['pytx']:,.0f}/s); batch of 8: {m['batch8'] / m['pytx']:.1f}x",
                m["single"] >= 10 * m["pytx"])
        add(f"matching {label}: recall 1.0 against brute force", f"{m['recall']:.4f}, {m['extra']} false hits",
            m["recall"] == 1.0 and m["extra"] == 0)
        add(f"matching {label}: <= 40 bytes per PDQ indicator",
            f"multihash {m['mih_index_bytes']:.0f} B index ({m['mih_rss']:.0f} B RSS); flat {m['flat_index_bytes']:.0f} B "
            f"({m['flat_rss']:.0f} B RSS, {m['flat_single'] / m['pytx']:.2f}x pytx's speed); pytx {m['pytx_rss']:.0f} B RSS",
            m["mih_index_bytes"] <= 40)
    for label, e in RESULTS.get("e2e", {}).items():
        add(f"end to end, {label} images: >= 100 image events/s per core (Beam)", f"{e['per_core']:.0f}/s per core "
            f"({e['per_core_steady']:.0f} without the fixed start-up cost); plain loop {e['loop_ours']:.0f}/s vs pytx "
            f"{e['loop_pytx']:.0f}/s", e["per_core"] >= 100)
    if not rows:
        return ""
    return "### Targets\n\n" + table(["target", "measured", ""], rows)

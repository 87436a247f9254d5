#!/usr/bin/env python3
"""Raspberry Pi 4 projection of the shipped models: a projection, not a measurement.

    .venv/bin/python scripts/bench/pi_projection.py [--config FILE] [--json]

Counts the multiply-accumulates of each TFLite model named in the config
(edge/projection.py) and turns them into milliseconds on one Cortex-A72 core
with the published XNNPACK Raspberry Pi 4 figures cited there. `moodbox bench`
prints the same projection for whole frames, with the measured per-frame mix
of detections, classifications and embeddings.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.config import load_config
from edge.measure.projection import GMAC_PER_S, LABEL, SOURCE, count_macs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    config = load_config(args.config)
    paths = {"detect": config.detect.model, "emotion": config.emotion.model}
    identify = getattr(config, "identify", None)
    if identify is not None and config.resolve(identify.model).is_file():
        paths["embed"] = identify.model
    rows = {}
    for stage, path in paths.items():
        cost = count_macs(config.resolve(path))
        rows[stage] = {
            "file": cost.name,
            "precision": cost.precision,
            "mmacs": round(cost.macs / 1e6, 2),
            **{
                f"pi4_ms_{case}": round(cost.pi4_ms(speed), 1) for case, speed in GMAC_PER_S.items()
            },
        }
    if args.json:
        print(json.dumps({"label": LABEL, "source": SOURCE, "models": rows}))
        return 0
    print(f"Raspberry Pi 4, one Cortex-A72 core: {LABEL.upper()}")
    print(f"{'stage':<9}{'model':<38}{'M MACs':>9}{'likely ms':>11}{'pessimistic ms':>16}")
    for stage, row in rows.items():
        print(
            f"{stage:<9}{row['file'] + ' (' + row['precision'] + ')':<38}{row['mmacs']:>9}"
            f"{row['pi4_ms_likely']:>11}{row['pi4_ms_pessimistic']:>16}"
        )
    print(f"per-core speed: {GMAC_PER_S} GMAC/s; source: {SOURCE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

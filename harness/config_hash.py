"""What makes two training runs the same run: a hash of the resolved config.

A FINISHED run in MLflow whose `config_hash` tag matches is the same training, whichever setting
name, store or machine it came from, so a re-run (findings, the sweep's confirmation) trains only
what is missing. The hash covers every key that can change the result, and leaves out those that
cannot.
"""

import hashlib
import json

from harness.config import TrainConfig

# Keys that do not change what is trained or measured: labels, display, evaluation chunking, where
# data is read from and where results are written. `device` is left out too, so a config run on
# CPU and on GPU counts as one (they differ by float rounding only); each run's device is a tag.
HASH_IGNORED = ("name", "progress", "eval_batch_size", "device", "data.root")
HASH_IGNORED_PREFIXES = ("tracking.",)


def config_hash(cfg: TrainConfig) -> str:
    """A stable 16-hex-digit hash of `cfg.flat()` without the keys in `HASH_IGNORED`.

    Args:
        cfg: a resolved training config.
    Returns:
        The first 16 hex digits of the SHA-256 of the remaining keys as sorted JSON.
    """
    kept = {
        k: v
        for k, v in cfg.flat().items()
        if k not in HASH_IGNORED and not k.startswith(HASH_IGNORED_PREFIXES)
    }
    blob = json.dumps(kept, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]

"""Where a run's numbers go: `<workdir>/metrics.jsonl` (one JSON object per line) and TensorBoard events.

On resume the log is cut back to the restored step, so a run interrupted and resumed leaves exactly the
lines an uninterrupted run would have written.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any


def read_metrics(workdir: str | pathlib.Path) -> list[dict[str, Any]]:
    path = pathlib.Path(workdir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricsWriter:
    def __init__(self, workdir: str | pathlib.Path, resume_step: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        self._tb = None
        if not enabled:
            return
        kept = [r for r in read_metrics(workdir) if r["step"] <= resume_step]
        if resume_step == 0:
            kept = []
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)
        from tensorboardX import SummaryWriter

        self._tb = SummaryWriter(str(pathlib.Path(workdir) / "tensorboard"), purge_step=resume_step or None)

    def write(self, step: int, epoch: float, split: str, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        record = {"step": int(step), "epoch": round(float(epoch), 6), "split": split,
                  **{k: float(v) for k, v in values.items()}}
        try:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as err:  # e.g. a full disk: named here, since the error of a write names no file
            raise OSError(err.errno, f"{err.strerror}: writing {self.path}") from None
        for key, value in values.items():
            self._tb.add_scalar(f"{split}/{key}", float(value), int(step))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()

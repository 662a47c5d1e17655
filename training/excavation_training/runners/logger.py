"""Per-iteration metrics: TensorBoard scalars, a JSON-lines log and a CSV log."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

# Column order of metrics.csv, and the TensorBoard tag of each metric.
METRICS: dict[str, str] = {
    "iteration": "",
    "stage": "prpd/stage",
    "resolution_mm": "prpd/resolution_mm",
    "stage_iteration": "prpd/stage_iteration",
    "success_rate": "train/success_rate",
    "episodes": "train/episodes",
    "episode_return": "train/episode_return",
    "episode_length": "train/episode_length",
    "step_reward": "train/step_reward",
    "alpha": "prpd/alpha",
    "teacher_advantage": "prpd/teacher_advantage",
    "teacher_kl": "prpd/teacher_kl",
    "distill_loss": "loss/distill",
    "q_loss": "loss/q",
    "surrogate_loss": "loss/surrogate",
    "value_loss": "loss/value",
    "entropy": "loss/entropy",
    "policy_kl": "ppo/kl",
    "learning_rate": "ppo/learning_rate",
    "kl_beta": "ppo/kl_beta",
    "action_std": "ppo/action_std",
    "samples": "time/samples",
    "sim_seconds": "time/sim_seconds",
    "simulated_seconds": "time/simulated_seconds",
    "wall_seconds": "time/wall_seconds",
    "iteration_seconds": "time/iteration_seconds",
}


class TrainLogger:
    def __init__(self, log_dir: str | Path, *, start_iteration: int = 0, tensorboard: bool = True) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl_path = self.log_dir / "metrics.jsonl"
        self.csv_path = self.log_dir / "metrics.csv"
        # A run killed after its last checkpoint logged iterations the resumed run will redo.
        self._drop_after(start_iteration)
        new_csv = not self.csv_path.exists()
        self._jsonl = self.jsonl_path.open("a")
        self._csv_file = self.csv_path.open("a", newline="")
        self._csv = csv.DictWriter(self._csv_file, fieldnames=list(METRICS), extrasaction="ignore")
        if new_csv:
            self._csv.writeheader()
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.log_dir / "tensorboard"), purge_step=start_iteration + 1)

    def _drop_after(self, iteration: int) -> None:
        if self.jsonl_path.exists():
            keep = [ln for ln in self.jsonl_path.read_text().splitlines() if ln.strip() and json.loads(ln).get("iteration", 0) <= iteration]
            self.jsonl_path.write_text("".join(ln + "\n" for ln in keep))
        if self.csv_path.exists():
            with self.csv_path.open(newline="") as f:
                rows = list(csv.DictReader(f))
            keep_rows = [r for r in rows if int(float(r.get("iteration") or 0)) <= iteration]
            with self.csv_path.open("w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(METRICS), extrasaction="ignore")
                w.writeheader()
                w.writerows(keep_rows)

    def log(self, metrics: dict) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}
        self._jsonl.write(json.dumps(clean) + "\n")
        self._jsonl.flush()
        self._csv.writerow({k: ("" if v is None else v) for k, v in clean.items()})
        self._csv_file.flush()
        if self._tb is not None:
            step = int(metrics["iteration"])
            for key, tag in METRICS.items():
                value = clean.get(key)
                if tag and value is not None:
                    self._tb.add_scalar(tag, value, step)

    def close(self) -> None:
        self._jsonl.close()
        self._csv_file.close()
        if self._tb is not None:
            self._tb.close()

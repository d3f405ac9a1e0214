"""The per-epoch history of a run (both engines), saved as JSON and CSV beside the model."""
from __future__ import annotations

import csv
import json
import os
from typing import Any, Optional

FIELDS = ("epoch", "train_loss", "train_accuracy", "dev_loss", "dev_accuracy", "lr", "seconds")


class EpochHistory:
    """Rows of `FIELDS`, one per epoch; written to `history.json` and `history.csv` after each epoch.

    Fields that a run does not measure (a dev split never evaluated, train accuracy not asked for) are None.
    """

    def __init__(self, output_dir: Optional[str] = None) -> None:
        self.output_dir = output_dir
        self.rows = []

    def add(self, **values: Any) -> None:
        unknown = set(values) - set(FIELDS)
        if unknown:
            raise KeyError(f"unknown history fields {sorted(unknown)}")
        self.rows.append({field: values.get(field) for field in FIELDS})
        if self.output_dir:
            self.save(self.output_dir)

    def column(self, field: str) -> list:
        return [row[field] for row in self.rows]

    def save(self, output_dir: str) -> None:
        with open(os.path.join(output_dir, "history.json"), "w", encoding="utf-8") as file:
            json.dump(self.rows, file, indent=1)
        with open(os.path.join(output_dir, "history.csv"), "w", encoding="utf-8", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)

"""Checking a config's data before a long run: every split indexed, every image decoded, all problems listed at
once (training stops at the first undecodable image; a large set is better checked first)."""
import multiprocessing
import os
from typing import List, Optional

from ..errors import DataError
from .folder import ImageFiles, read_image
from .file_loader import quiet_worker_exit
from .loader import build_dataset, class_names
from .samples import base_dataset


def _decode_problem(path_and_channels) -> Optional[str]:
    try:
        read_image(*path_and_channels)
    except DataError as exc:
        return str(exc)
    return None


def check_data(config: dict, processes: Optional[int] = None) -> List[str]:
    """Index every split of `DataLoader` and decode every image file, in `processes` processes (default: all
    cores). Prints a line per split (images, classes) and returns the problems found, one line each."""
    problems, summaries = [], []
    for split in config["DataLoader"]:
        try:
            dataset = build_dataset(config, split)
        except DataError as exc:
            problems.append(f"DataLoader.{split}: {exc}")
            continue
        base = base_dataset(dataset)[0]
        classes = getattr(base, "classes", None) or getattr(base, "label_names", ())
        summaries.append(f"DataLoader.{split}: {len(dataset)} samples in {len(classes)} classes")
        if isinstance(base, ImageFiles):
            paths = [(path, base.channels) for path, _ in base.samples]
            with multiprocessing.get_context("fork").Pool(processes or os.cpu_count(), quiet_worker_exit) as pool:
                problems += [problem for problem in pool.imap(_decode_problem, paths, chunksize=64) if problem]
    if not problems:
        try:
            class_names(config)
        except DataError as exc:
            problems.append(str(exc))
    for line in summaries:
        print(line)
    return sorted(set(problems))

"""The best model of a run, kept by the same rule on both engines (the course's, saved at the first evaluation
too)."""
from __future__ import annotations

import paddle

from ..utils.weights import save_weights
from ..utils.distributed import is_main_process
from ..utils.logger import logger


def report_evaluation(model: paddle.nn.Layer, dev_score: float, dev_loss: float, best_score: float, save_path: str,
                      first: bool = False) -> float:
    """The course's lines after an evaluation during training, and its rule for the best model: saved to
    `save_path` (by rank 0, never with NaN or inf weights) when `dev_score` beats `best_score`, and also at the
    `first` evaluation of a run whatever its score (the course's best score starts at 0, so a run whose dev
    score stayed 0 would have no best model at all).

    Returns:
        The new best score.
    """
    logger.info(f"[Evaluate]  dev score: {dev_score:.5f}, dev loss: {dev_loss:.5f}")
    if dev_score <= best_score and not first:
        return best_score
    if is_main_process():
        save_weights(model, save_path, "at this evaluation")
    if dev_score > best_score:
        logger.info(f"[Evaluate] best accuracy performence has been updated: {best_score:.5f} --> {dev_score:.5f}")
    else:
        logger.info(f"[Evaluate] best model saved: the first evaluation (dev score {dev_score:.5f})")
    return dev_score

"""Whole runs from a config: train (then test the best model) and evaluate a saved model."""
import json
import os
import tempfile

import paddle

from ..config import dump_config
from ..errors import CheckpointError, ConfigError
from ..optim import build_optimizer
from ..utils.checkpoint import load_model_file
from ..utils.logger import log_to_file, logger
from ..utils.plot import plot_training_loss_acc
from .components import build_loader, build_loss, build_metric, build_model, seed_everything, set_device
from .runner import RunnerV3

BEST_MODEL = "best_model.pdparams"
LAST_MODEL = "last_model.pdparams"
FIGURE = "training_loss_acc.png"


def prepare_output_dir(path):
    """Create `Global.output_dir` and check it can be written, before any training starts."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(f"Global.output_dir: cannot write to {path} ({exc.strerror}); choose another folder") from None
    return path


def _test(runner, config):
    score, loss = runner.evaluate(build_loader(config, "Test"))
    logger.info(f"[Test] accuracy/loss: {score:.4f}/{loss:.4f}")
    return score, loss


def train(config):
    """Train with RunnerV3 as the config says, save the best and last models, the config, the log and the
    figure into `Global.output_dir`, then test the best model.

    Returns:
        A dict of the results (best dev score, test accuracy and loss, file paths).
    """
    settings = config["Global"]
    if settings["engine"] != "runner":
        raise ConfigError(f"Global.engine: unknown engine {settings['engine']!r} (valid: runner)")
    output_dir = prepare_output_dir(settings["output_dir"])
    handler = log_to_file(os.path.join(output_dir, "train.log"))
    try:
        device = set_device(settings["device"])
        seed_everything(settings["seed"])
        with open(os.path.join(output_dir, "config.yml"), "w", encoding="utf-8") as file:
            file.write(dump_config(config))
        model = build_model(config)
        optimizer = build_optimizer(config["Optimizer"], model.parameters())
        runner = RunnerV3(model, optimizer, build_loss(config), build_metric(config))
        train_loader = build_loader(config, "Train")
        eval_steps = settings["eval_steps"]
        dev_loader = build_loader(config, "Eval") if eval_steps else None
        logger.info(f"paddle {paddle.__version__} on {device}; {len(train_loader.dataset)} training samples; "
                    f"writing to {output_dir}")
        best_path = os.path.join(output_dir, BEST_MODEL)
        runner.train(train_loader, dev_loader, num_epochs=settings["epochs"], log_steps=settings["log_steps"],
                     eval_steps=eval_steps, save_path=best_path)
        runner.save_model(os.path.join(output_dir, LAST_MODEL))
        plot_training_loss_acc(runner, os.path.join(output_dir, FIGURE))
        results = {"best_dev_score": runner.best_score if runner.dev_scores else None}
        if "Test" in config["DataLoader"]:
            if runner.dev_scores and os.path.isfile(best_path):
                runner.load_model(best_path)
            else:
                logger.info("No dev evaluation ran (Global.eval_steps: 0), so the final weights are tested.")
            results["test_accuracy"], results["test_loss"] = _test(runner, config)
        with open(os.path.join(output_dir, "results.json"), "w", encoding="utf-8") as file:
            json.dump(results, file, indent=2)
        return results
    finally:
        logger.removeHandler(handler)
        handler.close()


def evaluate(config):
    """Evaluate a saved model on the test split: `Global.checkpoint`, else the best model in `Global.output_dir`.

    Returns:
        `(accuracy, loss)`.
    """
    settings = config["Global"]
    checkpoint = settings["checkpoint"] or os.path.join(settings["output_dir"], BEST_MODEL)
    if not os.path.isfile(checkpoint):
        raise CheckpointError(f"no model file at {checkpoint}: train first (tools/train.py -c CONFIG) "
                              "or name one with -o Global.checkpoint=PATH")
    set_device(settings["device"])
    model = build_model(config)
    load_model_file(model, checkpoint)
    runner = RunnerV3(model, None, build_loss(config), build_metric(config))
    logger.info(f"Evaluating {checkpoint}")
    return _test(runner, config)

"""Training runs from a config, on either engine, ending with a test of the best model."""
import json
import os
import tempfile

import paddle

from ..config import dump_config
from ..errors import ConfigError, NonFiniteLoss
from ..utils.checkpoint import load_model_file, save_weights
from ..utils.distributed import init_parallel, is_main_process, rank, world_size
from ..utils.history import EpochHistory
from ..utils.logger import log_to_file, logger
from ..utils.plot import plot_loss_and_accuracy, plot_training_loss_acc, plot_validation_accuracy
from .checkpointing import Checkpointer, StopRequest, find_checkpoint, resume_run, stopped_by_nan
from .callbacks import EpochEvaluation, LRStep, RecordEpochs, RunnerScalars, note_short_run, scalar_recorder
from .components import amp_level, build_components, build_loader, build_loss, build_metric, seed_everything, set_device
from .hapi import train_hapi
from .runner import RunnerV3

BEST_MODEL = "best_model.pdparams"


def prepare_output_dir(path):
    """Create `Global.output_dir` and check it can be written, before any training starts."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(f"Global.output_dir: cannot write to {path} ({exc.strerror}); choose another folder") from None
    return path


def train_runner(config, parts, history, paths, stop):
    """Train with the course's RunnerV3; returns the best dev score (None without evaluation)."""
    settings = config["Global"]
    model = paddle.DataParallel(parts.model) if world_size() > 1 else parts.model
    runner = RunnerV3(model, parts.optim.optimizer, parts.loss_fn, parts.metric,
                      amp_level=amp_level(config, paddle.get_device()), amp_dtype=settings["amp_dtype"])
    train_loader = build_loader(config, "Train")
    note_short_run(settings, len(train_loader))
    evaluate = settings["eval_steps"] or settings["eval_per_epoch"]
    dev_loader = build_loader(config, "Eval") if evaluate else None
    resumed = None
    if settings["resume"]:
        resumed = resume_run(settings["resume"], paths["output_dir"], parts.model, parts.optim.optimizer, "runner",
                             history)
        runner.set_history_state(resumed["runner"])
        if hasattr(train_loader.batch_sampler, "set_epoch"):  # a data-parallel sampler shuffles by epoch number
            train_loader.batch_sampler.set_epoch(resumed["next_step"] // len(train_loader))
        logger.info(f"[Train] resuming from {resumed['folder']} at step {resumed['next_step']}")
    callbacks = [EpochEvaluation(dev_loader, paths["best"])] if settings["eval_per_epoch"] else []
    train_eval_loader = None
    if settings["train_accuracy"]:
        train_eval_loader = build_loader(config, "Train", evaluation=True) if world_size() > 1 else train_loader
    callbacks.append(RecordEpochs(history, settings["epochs"], train_eval_loader))
    scalars = scalar_recorder(settings, paths, len(train_loader), parts.metric)
    if scalars is not None:
        callbacks.append(RunnerScalars(scalars, already_written=len(runner.dev_scores)))
    if parts.optim.scheduler is not None:
        callbacks.append(LRStep(parts.optim.scheduler, parts.optim.by_epoch))
    checkpointer = Checkpointer(paths["output_dir"], settings["save_interval"], settings["save_unit"], history, stop,
                                resumed)
    callbacks.append(checkpointer)
    try:
        runner.train(train_loader, dev_loader, num_epochs=settings["epochs"], log_steps=settings["log_steps"],
                     eval_steps=settings["eval_steps"], save_path=paths["best"], callbacks=callbacks,
                     start_step=resumed["next_step"] if resumed else 0,
                     epoch_loss_sum=resumed["epoch_loss_sum"] if resumed else 0.0, progress=settings["progress"])
    except NonFiniteLoss as exc:
        last = checkpointer.latest or (find_checkpoint("auto", paths["output_dir"]) if resumed else None)
        raise stopped_by_nan(exc, last) from None
    if is_main_process():
        plot_training_loss_acc(runner, os.path.join(paths["output_dir"], "training_loss_acc.png"))
    return runner.best_score if runner.dev_scores else None


ENGINES = {"runner": train_runner, "hapi": train_hapi}


def test_model(model, config, metric=None):
    """Evaluate `model` on the test split with RunnerV3 and print the course's `[Test]` line.

    Args:
        metric: the metric to use instead of the config's (built from the same `Metric` section).

    Returns:
        `(accuracy, loss, number of samples evaluated)`.
    """
    runner = RunnerV3(model, None, build_loss(config), metric or build_metric(config))
    score, loss = runner.evaluate(build_loader(config, "Test"))
    logger.info(f"[Test] accuracy/loss: {score:.4f}/{loss:.4f}")
    return score, loss, runner.metric.num_count


def weights_fingerprint(model):
    """A number that differs when the weights differ: the processes of a data-parallel run must agree on it."""
    return float(sum(float(p.astype("float64").sum()) + float((p.astype("float64") ** 2).sum())
                     for p in model.parameters()))


def train(config):
    """Train as the config says on `Global.engine`, then test the best model.

    Writes into `Global.output_dir`: the best model, the final weights (`Global.save_name`), the config,
    the log, the per-epoch history (JSON, CSV) and its figures, VisualDL records and `results.json`.

    Returns:
        A dict of the results (best dev score, test accuracy and loss).
    """
    settings = config["Global"]
    if settings["engine"] not in ENGINES:
        raise ConfigError(f"Global.engine: unknown engine {settings['engine']!r} (valid: {', '.join(ENGINES)})")
    main = is_main_process()
    output_dir = prepare_output_dir(settings["output_dir"]) if main else settings["output_dir"]
    paths = {"output_dir": output_dir, "best": os.path.join(output_dir, BEST_MODEL),
             "visualdl": os.path.join(output_dir, "visualdl")}
    handler = log_to_file(os.path.join(output_dir, "train.log")) if main else None
    try:
        device = set_device(settings["device"], settings["num_threads"])
        init_parallel()
        seed_everything(settings["seed"], settings["deterministic"])
        if main:
            with open(os.path.join(output_dir, "config.yml"), "w", encoding="utf-8") as file:
                file.write(dump_config(config))
        logger.info(dump_config(config))
        parallel = f", process {rank()} of {world_size()}" if world_size() > 1 else ""
        logger.info(f"paddle {paddle.__version__} on {device}{parallel}, engine {settings['engine']}, "
                    f"writing to {output_dir}")
        logger.info(f"Watch it with: visualdl --logdir {paths['visualdl']}")
        parts = build_components(config)
        history = EpochHistory(output_dir if main else None)
        with StopRequest() as stop:
            best_dev_score = ENGINES[settings["engine"]](config, parts, history, paths, stop)
        results = {"best_dev_score": best_dev_score, "weights_fingerprint": weights_fingerprint(parts.model)}
        logger.info(f"[Train] final weights fingerprint (process {rank()}): {results['weights_fingerprint']:.12e}")
        if main:
            save_weights(parts.model, os.path.join(output_dir, settings["save_name"]), "at the end of training")
        if main and history.rows:
            plot_loss_and_accuracy(history, os.path.join(output_dir, "loss_accuracy.png"))
            if any(row["dev_accuracy"] is not None for row in history.rows):
                plot_validation_accuracy(history, os.path.join(output_dir, "validation_accuracy.png"))
        if "Test" in config["DataLoader"]:
            if best_dev_score is not None and os.path.isfile(paths["best"]):
                load_model_file(parts.model, paths["best"])
            else:
                logger.info("No dev evaluation ran, so the final weights are tested.")
            results["test_accuracy"], results["test_loss"], results["test_samples"] = test_model(parts.model, config)
        if main:
            with open(os.path.join(output_dir, "results.json"), "w", encoding="utf-8") as file:
                json.dump(results, file, indent=2)
        return results
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            handler.close()


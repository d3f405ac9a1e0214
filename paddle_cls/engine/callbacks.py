"""What both engines record around the training loop, the same way: the `[Epoch]` line, the VisualDL scalars,
and the note on runs shorter than their log or evaluation interval. The engines' own callbacks sit beside
their drivers (`train_runner.py`, `hapi.py`)."""
from ..metrics import score_name
from ..utils.distributed import is_main_process
from ..utils.logger import logger


def epoch_line(history, epochs):
    """Log the `[Epoch]` line of the history's last row."""
    row = history.rows[-1]
    parts = [f"train loss: {row['train_loss']:.5f}"]
    for field in ("train_accuracy", "dev_loss", "dev_accuracy"):
        if row[field] is not None:
            parts.append(f"{field.replace('_', ' ')}: {row[field]:.5f}")
    logger.info(f"[Epoch] {row['epoch']}/{epochs}: " + ", ".join(parts) + f", time: {row['seconds']:.1f}s")


def note_short_run(settings, steps_per_epoch):
    """One line when the run is shorter than `eval_steps` or `log_steps`: as in the course's RunnerV3, it still
    logs its first step and evaluates at its last one."""
    total = settings["epochs"] * steps_per_epoch
    for key, what in (("eval_steps", "evaluates at its last step"), ("log_steps", "logs its first step only")):
        if settings[key] > total:
            logger.info(f"Global.{key}: {settings[key]} is more than the {total} steps of this run "
                        f"({settings['epochs']} epochs of {steps_per_epoch}); it {what}, as the course's RunnerV3 does")


def scalar_recorder(settings, paths, steps_per_epoch, metric):
    """The VisualDL recorder of rank 0 (None elsewhere), every `Global.vdl_steps` steps; by default every step
    of a run of up to 1,000 steps, and about 1,000 points over a longer one."""
    if not is_main_process():
        return None
    every = settings["vdl_steps"] or max(1, settings["epochs"] * steps_per_epoch // 1000)
    return ScalarRecorder(paths["visualdl"], every, score_name(metric))


class ScalarRecorder:
    """The VisualDL records of a run, with the same tags on both engines: `train/loss` and `train/lr` every
    `every` steps (`Global.vdl_steps`), `eval/loss` and `eval/<metric name>` at each evaluation."""

    def __init__(self, logdir, every, metric_name="Accuracy"):
        from visualdl import LogWriter

        self.writer = LogWriter(logdir=logdir)
        self.every = every
        self.score_tag = f"eval/{metric_name}"

    def train_step(self, step, loss, lr):
        self.writer.add_scalar(tag="train/loss", step=step, value=loss)
        self.writer.add_scalar(tag="train/lr", step=step, value=lr)

    def evaluation(self, step, loss, score):
        self.writer.add_scalar(tag="eval/loss", step=step, value=loss)
        self.writer.add_scalar(tag=self.score_tag, step=step, value=score)

    def close(self):
        self.writer.close()

"""The VisualDL records of a run, the same on both engines: the `VisualDLRecords` callback feeding a
`ScalarRecorder`, and the records file continued across resumes."""
from __future__ import annotations

import contextlib
import io
import os
from typing import Callable, Optional

import paddle

from ..metrics import score_name
from ..utils.distributed import is_main_process
from .callbacks import CHECK_EVERY


def scalar_recorder(settings: dict, paths: dict, steps_per_epoch: int, metric: paddle.metric.Metric,
                    resume_step: Optional[int] = None) -> Optional[ScalarRecorder]:
    """The VisualDL recorder of rank 0 (None elsewhere), every `Global.vdl_steps` steps; by default every step
    of a run of up to 1,000 steps, and about 1,000 points over a longer one. A run resumed at `resume_step`
    continues the records of the run it resumes (see `continue_records`)."""
    if not is_main_process():
        return None
    every = settings["vdl_steps"] or max(1, settings["epochs"] * steps_per_epoch // 1000)
    return ScalarRecorder(paths["visualdl"], every, score_name(metric), resume_step)


def continue_records(logdir: str, step: int) -> str:
    """Prepare the records file VisualDL shows for `logdir` (the newest `vdlrecords.*.log`) for a run resumed
    at `step`, and return its name ("" when there is none).

    The file keeps its records of steps before `step` only: a run killed after its last checkpoint wrote steps
    that the resumed run repeats. It is rewritten atomically, in VisualDL's own format, without its meta
    record (the writer that reopens it adds one).
    """
    from google.protobuf.message import DecodeError
    from visualdl.proto import record_pb2
    from visualdl.reader.reader import is_VDLRecord_file
    from visualdl.reader.record_reader import RecordReader
    from visualdl.writer.record_writer import RecordWriter

    names = sorted(name for name in os.listdir(logdir) if is_VDLRecord_file(name)) if os.path.isdir(logdir) else []
    if not names:
        return ""
    path, kept = os.path.join(logdir, names[-1]), []
    for data in RecordReader(path).get_all():
        record = record_pb2.Record()
        try:
            record.ParseFromString(data)
        except DecodeError:  # a record cut short by the kill: nothing after it was written
            break
        if not record.values:
            break
        value = record.values[0]
        if value.WhichOneof("one_value") != "meta_data" and value.id < step:
            kept.append(data)
    temporary = os.path.join(logdir, "rewrite.tmp")  # not a vdlrecords name: VisualDL never reads it
    with open(temporary, "wb") as file:
        writer = RecordWriter(file)
        for data in kept:
            writer.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    return names[-1]


class ScalarRecorder:
    """The VisualDL records of a run, with the same tags on both engines: `train/loss` and `train/lr` every
    `every` steps (`Global.vdl_steps`), `eval/loss` and `eval/<metric name>` at each evaluation.

    A run resumed at `resume_step` appends to the records of the run it resumes (one file, one series per tag
    across any number of resumes), after dropping those of `resume_step` and later."""

    def __init__(self, logdir, every, metric_name="Accuracy", resume_step=None):
        from visualdl import LogWriter

        file_name = continue_records(logdir, resume_step) if resume_step is not None else ""
        with contextlib.redirect_stdout(io.StringIO()):  # its "is exists, VisualDL will add logs to it"
            self.writer = LogWriter(logdir=logdir, file_name=file_name)
        self.every = every
        self.score_tag = f"eval/{metric_name}"

    def train_step(self, step: int, loss: float, lr: float) -> None:
        self.writer.add_scalar(tag="train/loss", step=step, value=loss)
        self.writer.add_scalar(tag="train/lr", step=step, value=lr)

    def evaluation(self, step: int, loss: float, score: float) -> None:
        self.writer.add_scalar(tag="eval/loss", step=step, value=loss)
        self.writer.add_scalar(tag=self.score_tag, step=step, value=score)

    def flush(self) -> None:
        """Put every record given so far into the file: before a checkpoint, so that a run resumed from it
        finds the records of all the steps before it."""
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class VisualDLRecords(paddle.callbacks.Callback):
    """Feeds a `ScalarRecorder` on both engines: the step losses every `recorder.every` steps (written in batches
    of `CHECK_EVERY`) and each evaluation. Before a checkpoint (at each epoch's end,
    each evaluation, and after each step where `saves_after(global_step)`) every record so far is put into the
    file, so that a run resumed from that checkpoint continues the records without a gap."""

    def __init__(self, recorder: ScalarRecorder, score_name: str,
                 saves_after: Callable[[int], bool] = lambda step: False) -> None:
        super().__init__()
        self.recorder = recorder
        self.score_name = score_name
        self.saves_after = saves_after
        self._pending = []

    def _write(self):
        if self._pending:
            for step, loss, lr in self._pending:
                self.recorder.train_step(step, loss, lr)
            self._pending = []

    def on_train_batch_end(self, step: int, logs: Optional[dict] = None) -> None:
        global_step = logs["global_step"]
        if global_step % self.recorder.every == 0:
            self._pending.append((global_step, logs["loss"], logs["lr"]))
        if self.saves_after(global_step):
            self._write()
            self.recorder.flush()
        elif len(self._pending) >= CHECK_EVERY:
            self._write()

    def on_eval_end(self, logs: Optional[dict] = None) -> None:
        self._write()
        self.recorder.evaluation(logs["global_step"], logs["loss"], logs[self.score_name])
        self.recorder.flush()

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None:
        self._write()
        self.recorder.flush()

    def on_train_end(self, logs: Optional[dict] = None) -> None:
        self._write()
        self.recorder.close()

"""Gathering concurrent requests into batches: many clients each sending one image are run as one batch, so the
server's throughput approaches the predictor's batch speed rather than its batch-1 speed."""
from __future__ import annotations

import asyncio
import time

import numpy as np


class Batcher:
    """Queue model inputs from concurrent requests; run them `batch_size` images at a time, waiting at most
    `max_wait` seconds after the first for others to join. The model runs in a worker thread, so the server
    keeps accepting requests meanwhile.

    Args:
        model: float32 [N, C, H, W] array -> logits array.
    """

    def __init__(self, model, batch_size=32, max_wait=0.005):
        self.model = model
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.queue = None
        self.task = None
        self.batches_run = 0
        self.images_run = 0

    def start(self) -> None:
        """Start the batching loop (on the server's event loop)."""
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def logits(self, inputs: np.ndarray) -> np.ndarray:
        """The logits of one request's inputs [n, C, H, W], computed in a batch with other requests'."""
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((inputs, future))
        return await future

    def _run(self, batch):
        # Padded to a power of two: engines keep kernels per input shape (oneDNN caches them), so a few batch
        # shapes keep the server's memory flat where every size from 1 to batch_size would grow it.
        size = 1 << (len(batch) - 1).bit_length()
        padded = np.concatenate([batch, np.zeros((size - len(batch), *batch.shape[1:]), batch.dtype)])
        return self.model(padded)[:len(batch)]

    async def _loop(self):
        loop = asyncio.get_running_loop()
        while True:
            pending = [await self.queue.get()]
            count, deadline = len(pending[0][0]), time.monotonic() + self.max_wait
            while count < self.batch_size:
                try:
                    item = await asyncio.wait_for(self.queue.get(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    break
                pending.append(item)
                count += len(item[0])
            try:
                logits = await loop.run_in_executor(None, self._run, np.concatenate([x for x, _ in pending]))
            except Exception as exc:  # the requests of this batch fail; the server goes on
                for _, future in pending:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches_run += 1
            self.images_run += len(logits)
            start = 0
            for inputs, future in pending:
                if not future.done():
                    future.set_result(logits[start:start + len(inputs)])
                start += len(inputs)

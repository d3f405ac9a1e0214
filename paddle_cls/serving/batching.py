"""Gathering concurrent requests into batches: many clients each sending one image are run as one batch, so the
server's throughput approaches the predictor's batch speed rather than its batch-1 speed."""
from __future__ import annotations

import asyncio
import time
from collections import Counter
from contextlib import contextmanager
from typing import Iterator

import numpy as np


class Batcher:
    """Queue model inputs from concurrent requests; run them `batch_size` images at a time (a request with more
    runs alone). After the first input of a batch, wait for more while requests that would fit the batch are
    still being decoded (`preparing`), for at most `max_gather` seconds (0: as long as otherwise), and otherwise
    at most `max_wait`. The model runs in a worker thread, so the server keeps accepting requests meanwhile.

    Why wait for images being decoded: on a CPU the decoders and the model share the cores, so a batch run
    early is a small one padded to the next power of two, and the model spends cores on padding the decoders
    needed. Measured with 32 clients sending 12 MP photos to resnet18 at 224 px on 2 cores: batches of 5.4
    images on average without the wait (0.23x of the model's batch-32 throughput), 32 with it (0.26x). A lone
    request waits for no one (nothing else is being prepared); a request decoding slowly (a large PNG) holds
    the others' batch for up to `max_gather`.

    Args:
        model: float32 [N, C, H, W] array -> logits array.
    """

    def __init__(self, model, batch_size=32, max_wait=0.005, max_gather=1.0):
        self.model = model
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.max_gather = max_gather
        self.queue = None
        self.task = None
        self.batches_run = 0
        self.images_run = 0
        self.preparing_sizes = Counter()  # image count of each request being decoded -> how many such requests
        self.carried = None  # a request that did not fit the last batch: the next one's first

    def start(self) -> None:
        """Start the batching loop (on the server's event loop)."""
        self.queue = asyncio.Queue()
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    @contextmanager
    def preparing(self, images: int) -> Iterator[None]:
        """Mark `images` of a request as being decoded until the block ends (they then reach `logits`, or the
        request failed): batches wait for them."""
        self.preparing_sizes[images] += 1
        try:
            yield
        finally:
            self.preparing_sizes[images] -= 1
            if not self.preparing_sizes[images]:
                del self.preparing_sizes[images]

    @property
    def being_prepared(self) -> int:
        """Images of requests being decoded now."""
        return sum(size * count for size, count in self.preparing_sizes.items())

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

    async def _gather(self):
        """The next batch's (inputs, future) pairs: at most `batch_size` images, unless its first request alone
        has more; a request that would overflow the batch starts the next one."""
        first_item = self.carried if self.carried is not None else await self.queue.get()
        self.carried = None
        pending, count, first = [first_item], len(first_item[0]), time.monotonic()
        while count < self.batch_size:
            if self.queue.empty():
                # wait longer only for requests being decoded that fit the batch (a larger one starts the next)
                joinable = any(size <= self.batch_size - count for size in self.preparing_sizes)
                waiting = max(self.max_gather, self.max_wait) if joinable else self.max_wait
                left = first + waiting - time.monotonic()
                if left <= 0:
                    break
                try:  # in slices, so that the wait ends as soon as nothing is being prepared any more
                    item = await asyncio.wait_for(self.queue.get(), min(left, max(self.max_wait, 0.001)))
                except asyncio.TimeoutError:
                    continue  # an item put as the slice ran out stays queued: the next turn takes it
            else:
                item = self.queue.get_nowait()
            if count + len(item[0]) > self.batch_size:
                self.carried = item
                break
            pending.append(item)
            count += len(item[0])
        return pending

    async def _loop(self):
        loop = asyncio.get_running_loop()
        while True:
            pending = await self._gather()
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

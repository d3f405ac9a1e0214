"""The server's batcher (paddle_cls/serving/batching.py): requests whose images are still being decoded are
waited for, so that concurrent requests run as one batch; a lone request is not held back."""
import asyncio
import time

import numpy as np

from paddle_cls.serving.batching import Batcher


def _served(arrivals, max_gather=5.0, fail=()):
    """Run one request per entry of `arrivals` (seconds its decoding takes; those in `fail` raise instead),
    all starting together. Returns (the batch sizes the model saw, each answer or None, each request's
    seconds from its image being ready to its answer)."""
    sizes = []

    def model(batch):
        sizes.append(len(batch))
        return batch.reshape(len(batch), -1)

    async def main():
        batcher = Batcher(model, batch_size=32, max_wait=0.005, max_gather=max_gather)
        batcher.start()

        async def request(index, seconds):
            with batcher.preparing(1):
                await asyncio.sleep(seconds)  # the image being decoded
                if index in fail:
                    return None, 0.0
            ready = time.monotonic()
            answer = await batcher.logits(np.full((1, 1, 1, 2), index, np.float32))
            return answer, time.monotonic() - ready

        results = await asyncio.gather(*(request(index, seconds) for index, seconds in enumerate(arrivals)))
        await batcher.stop()
        return results

    results = asyncio.run(main())
    return sizes, [answer for answer, _ in results], [seconds for _, seconds in results]


def test_images_still_being_decoded_are_waited_for_and_run_in_one_batch():
    sizes, answers, _ = _served([0.0, 0.05, 0.1, 0.15])
    assert sizes == [4]  # one model call, where the short wait alone made four
    assert [answer[0, 0] for answer in answers] == [0, 1, 2, 3]  # each request gets its own row


def test_a_request_with_nothing_else_being_decoded_is_not_held_back():
    sizes, _, waits = _served([0.0])
    assert sizes == [1] and waits[0] < 0.5  # the 5 s bound is for waiting on others' decoding, and there is none


def test_a_request_that_fails_while_decoding_stops_the_wait_for_it():
    sizes, answers, waits = _served([0.0, 0.2], fail={1})
    assert sizes == [1] and answers[1] is None
    assert waits[0] < 2.0  # released when the failed request left, not at the 5 s bound


def test_the_wait_for_images_being_decoded_is_bounded():
    sizes, _, waits = _served([0.0, 3.0], max_gather=0.3)
    assert sizes == [1, 1]  # the first ran at the bound, without the slow second
    assert waits[0] < 2.0

"""The server's batcher (paddle_cls/serving/batching.py): requests whose images are still being decoded are
waited for, so that concurrent requests run as one batch; a lone request is not held back."""
import asyncio
import time

import numpy as np

from paddle_cls.serving.batching import Batcher


def _served(arrivals, max_gather=5.0, fail=(), sizes_of=None, max_wait=0.005):
    """Run one request per entry of `arrivals` (seconds its decoding takes; those in `fail` raise instead; one
    image each, or `sizes_of[index]`), all starting together, batches of at most 32. Returns (the batch sizes
    the model saw, padded, each answer or None, each request's seconds from its images being ready to its
    answer)."""
    sizes_of = sizes_of or {}
    sizes = []

    def model(batch):
        sizes.append(len(batch))
        return batch.reshape(len(batch), -1)

    async def main():
        batcher = Batcher(model, batch_size=32, max_wait=max_wait, max_gather=max_gather)
        batcher.start()

        async def request(index, seconds):
            images = sizes_of.get(index, 1)
            try:
                with batcher.preparing(images):
                    await asyncio.sleep(seconds)  # the images being decoded
                    if index in fail:
                        raise ValueError("not an image")
            except ValueError:
                return None, 0.0
            ready = time.monotonic()
            answer = await batcher.logits(np.full((images, 1, 1, 2), index, np.float32))
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
    assert 0.15 <= waits[0] < 2.0  # waited for the other, released when it failed, not at the 5 s bound


def test_the_wait_for_images_being_decoded_is_bounded():
    sizes, _, waits = _served([0.0, 3.0], max_gather=0.3)
    assert sizes == [1, 1]  # the first ran at the bound, without the slow second
    assert 0.25 <= waits[0] < 2.0


def test_a_request_that_would_overflow_the_batch_starts_the_next_one_and_is_not_waited_for():
    # 1 image ready, then 40 (over the batch of 32) 0.5 s later: two model calls, 1 and 40 (padded to 64), not
    # one of 41; the 1 is not held back for a request that could not join it
    sizes, answers, waits = _served([0.0, 0.5], sizes_of={1: 40})
    assert sizes == [1, 64] and waits[0] < 0.4
    assert answers[1].shape == (40, 2) and (answers[1] == 1).all()


def test_requests_finishing_their_decoding_between_two_polls_all_join_the_batch():
    # the review's case: with the shortest polling (max_wait 0), a request queued as a poll ran out was left for
    # a batch of its own nearly every time
    for _ in range(5):
        sizes, _, _ = _served([0.0, 0.013, 0.027], max_wait=0.0)
        assert sizes == [4]  # 3 images, padded

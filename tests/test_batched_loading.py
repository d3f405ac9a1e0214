"""Whole-batch CIFAR-10 loading gives the DataLoader's values and order, on the host and on the device."""
import numpy as np
import paddle
import pytest

from paddle_cls import CIFAR10Dataset
from paddle_cls.config import load_config
from paddle_cls.data.batched import CIFAR10BatchLoader
from paddle_cls.engine import train
from paddle_cls.errors import ConfigError


@pytest.mark.parametrize("on_device", [False, True])
def test_same_batches_as_the_dataloader(cifar_folder, on_device):
    dataset = paddle.io.Subset(CIFAR10Dataset(cifar_folder, "train"), list(range(10, 200)))
    np.random.seed(5)
    reference = [(x.numpy(), y.numpy()) for x, y in paddle.io.DataLoader(dataset, batch_size=32, shuffle=True)]
    np.random.seed(5)
    batched = [(x.numpy(), y.numpy()) for x, y in CIFAR10BatchLoader(dataset, 32, shuffle=True, on_device=on_device)]
    assert len(batched) == len(reference) == 6
    for (images, labels), (ref_images, ref_labels) in zip(batched, reference):
        np.testing.assert_array_equal(images, ref_images)
        np.testing.assert_array_equal(labels, ref_labels)
    loader = CIFAR10BatchLoader(dataset, 32, drop_last=True)
    assert len(loader) == len(list(loader)) == 5


def test_training_with_batched_loading_matches_the_dataloader(data_dir, tmp_path):
    overrides = [f"Global.data_dir={data_dir}", "Global.device=cpu", "Global.epochs=2", "Global.log_steps=0",
                 "Global.eval_steps=4", "Arch={name: MyNet, num_classes: 10}", "DataLoader.Train.batch_size=32"]
    plain = train(load_config("configs/model_resnet18.yml", overrides + [f"Global.output_dir={tmp_path / 'a'}"]))
    batched = train(load_config("configs/model_resnet18.yml", overrides + [
        f"Global.output_dir={tmp_path / 'b'}", "DataLoader.Train.on_device=true", "DataLoader.Eval.batched=true"]))
    assert batched["weights_fingerprint"] == pytest.approx(plain["weights_fingerprint"], rel=1e-6)
    assert batched["best_dev_score"] == plain["best_dev_score"]


def test_batched_loading_is_for_cifar10dataset(data_dir):
    from paddle_cls.data.loader import build_loader

    config = load_config("configs/mynet_cifar10.yml", [f"Global.data_dir={data_dir}", "DataLoader.Train.batched=true"])
    with pytest.raises(ConfigError, match="whole-batch loading is for CIFAR10Dataset only"):
        build_loader(config, "Train")


def test_sharded_evaluation_batches_cover_the_split_once():
    from paddle_cls.data.loader import ShardedBatchSampler

    dataset = list(range(64))
    single = [batch for batch in ShardedBatchSampler(dataset, 12, 0, 1)]
    shards = [list(ShardedBatchSampler(dataset, 12, rank, 2)) for rank in (0, 1)]
    assert [len(ShardedBatchSampler(dataset, 12, rank, 2)) for rank in (0, 1)] == [3, 3]
    assert sorted(shards[0] + shards[1]) == sorted(single)  # the same batches, dealt out
    assert sorted(i for shard in shards for batch in shard for i in batch) == dataset  # each sample once
    assert single[-1] == [60, 61, 62, 63]

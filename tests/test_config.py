import pytest
import yaml

from paddle_cls.config import load_config, parse_override
from paddle_cls.utils.runtime import resolve_device
from paddle_cls.errors import ConfigError

CONFIGS = "configs"


def test_shipped_resnet18_config_is_the_chapters_experiment():
    config = load_config(f"{CONFIGS}/resnet18.yml")
    assert config["Arch"] == {"name": "resnet18"}  # 1000-way head, as the chapter built it
    assert config["Optimizer"] == {"name": "Adam", "learning_rate": 0.001, "weight_decay": 0.005}
    g = config["Global"]
    assert (g["epochs"], g["log_steps"], g["eval_steps"], g["seed"], g["engine"]) == (30, 3000, 3000, 100, "runner")
    train, dev, test = (config["DataLoader"][s] for s in ("Train", "Eval", "Test"))
    assert train["batch_size"] == dev["batch_size"] == test["batch_size"] == 64 and train["shuffle"] is True
    assert [d["dataset"]["mode"] for d in (train, dev, test)] == ["train", "dev", "test"]
    assert config["Metric"] == {"name": "Accuracy", "is_logist": True}


def test_model_resnet18_config_differs_only_in_the_model():
    ours = load_config(f"{CONFIGS}/model_resnet18.yml")
    chapter = load_config(f"{CONFIGS}/resnet18.yml")
    assert ours["Arch"] == {"name": "Model_ResNet18", "in_channels": 3, "num_classes": 10, "use_residual": True}
    for section in ("Optimizer", "DataLoader", "Metric", "Loss"):
        assert ours[section] == chapter[section]


def test_overrides_are_parsed_as_yaml():
    config = load_config(f"{CONFIGS}/resnet18.yml", ["Global.epochs=5", "Arch.num_classes=10",
                                                     "Global.data_dir=/data/x", "DataLoader.Train.shuffle=false"])
    assert config["Global"]["epochs"] == 5 and config["Arch"]["num_classes"] == 10
    assert config["Global"]["data_dir"] == "/data/x" and config["DataLoader"]["Train"]["shuffle"] is False
    assert parse_override("Optimizer.learning_rate=1e-3") == (["Optimizer", "learning_rate"], 0.001)


@pytest.mark.parametrize("override,message", [
    ("Global.epoch=5", r"unknown key Global.epoch .*did you mean epochs"),
    ("Globl.epochs=5", r"unknown section Globl .*did you mean Global"),
    ("Global.epochs=-1", r"Global.epochs must be an integer >= 1, got -1"),
    ("Global.epochs=0", r"Global.epochs must be an integer >= 1, got 0"),  # would train nothing
    ("Global.epochs=five", r"Global.epochs must be an integer >= 1, got 'five'"),
    ("DataLoader.Train.batch_size=0", r"DataLoader.Train.batch_size must be an integer >= 1"),
    ("DataLoader.Train.batchsize=8", r"unknown key DataLoader.Train.batchsize .*did you mean batch_size"),
    ("Global.device=tpu", r"Global.device must be auto, cpu, gpu or gpu:N"),
    ("Global.epochs", r"malformed override 'Global.epochs'"),
    ("Global.epochs.x=1", r"Global.epochs is a value, not a section"),
])
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(f"{CONFIGS}/resnet18.yml", [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file .*missing.yml not found"):
        load_config(str(tmp_path / "missing.yml"))
    broken = tmp_path / "broken.yml"
    broken.write_text("Global: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(broken))
    no_arch = tmp_path / "no_arch.yml"
    no_arch.write_text(yaml.safe_dump({"Optimizer": {"name": "Adam"}, "DataLoader": {}}))
    with pytest.raises(ConfigError, match="section Arch is missing"):
        load_config(str(no_arch))


def test_gpu_on_a_cpu_only_paddle_is_a_clear_error():
    import paddle

    assert resolve_device("cpu") == "cpu"
    if paddle.is_compiled_with_cuda():
        pytest.skip("this Paddle has CUDA")
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="needs a CUDA build of Paddle.*Global.device: cpu"):
        resolve_device("gpu")


@pytest.mark.parametrize("override,message", [
    ("Optimizer.name=Adamm", r"Optimizer.name: unknown name 'Adamm' .*did you mean Adam"),
    ("Loss.name=CrossEntropy", r"Loss.name: unknown name 'CrossEntropy' .*CrossEntropyLoss"),
    ("DataLoader.Train.dataset.name=Cifar", r"DataLoader.Train.dataset.name: unknown name 'Cifar' .*Cifar10"),
    ("Global.engine=keras", r"Global.engine: unknown engine 'keras' \(valid: runner, hapi\)"),
    ("Optimizer.momentum=0.9", r"unknown key Optimizer.momentum"),  # Adam has no momentum
])
def test_unknown_names_fail_before_any_data_is_read(override, message, tmp_path):
    from paddle_cls.engine import train

    config = load_config(f"{CONFIGS}/mynet_cifar10.yml", [override, f"Global.output_dir={tmp_path}",
                                                          f"Global.data_dir={tmp_path}/no-data",
                                                          "Global.download=false"])
    with pytest.raises(ConfigError, match=message):
        train(config)


def test_deterministic_sets_paddles_flags(tmp_path):
    import paddle

    from paddle_cls.utils.runtime import seed_everything

    from paddle_cls.utils.runtime import DETERMINISTIC_FLAGS

    flags = seed_everything(1, deterministic=True)  # on any build: sets what exists, never fails
    for flag in DETERMINISTIC_FLAGS:
        if flag in flags:
            assert paddle.get_flags([flag])[flag]
        else:
            with pytest.raises(ValueError):
                paddle.set_flags({flag: True})

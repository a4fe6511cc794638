"""Trainer and codec registries and configs: built-ins, overrides, and a plugin trainer from an installed
distribution."""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

import pytest
from support import install_fake_distribution

import swirl_core
from swirl_core import SFTConfig, SwirlConfig, apply_overrides, get_trainer, register_trainer, trainer_names
from swirl_core.config import config_keys, from_dict, to_dict
from swirl_core.registry import TRAINERS, load_codec, trainer_plugins
from swirl_envs import lazy_registry
from swirl_envs.errors import SwirlError, UnknownNameError

PLUGIN = '''
import json
from dataclasses import dataclass
from pathlib import Path

from swirl_core.config import TrainerConfig

IMPORTED = True


@dataclass
class CountConfig(TrainerConfig):
    note: str = "hello"


class CountTrainer:
    """Counts transitions and never looks at actions."""

    config_class = CountConfig

    def __init__(self, config=None):
        self.config = config or CountConfig()

    def train(self, data, output_dir, init=None):
        final = Path(output_dir) / "final"
        final.mkdir(parents=True)
        rows = list(data)
        (final / "count.json").write_text(json.dumps({"n": len(rows), "note": self.config.note}))
        return final
'''


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    install_fake_distribution(tmp_path, "acme-trainers", "2.0.1", "acme_trainers", PLUGIN, "swirl.trainers",
                              "acme-count", "acme_trainers:CountTrainer")
    install_fake_distribution(tmp_path, "broken-trainers", "0.1", "broken_trainers",
                              "raise ImportError('no CUDA toolkit')\n", "swirl.trainers", "broken", "broken_trainers:Trainer")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setattr(lazy_registry, "_PLUGIN_STATUS", {})
    yield
    for name in ("acme_trainers", "broken_trainers"):
        sys.modules.pop(name, None)
    for name in ("acme-count", "broken"):
        TRAINERS.unregister(name)


def test_builtins_and_unknown_names():
    assert {"sft", "swirl", "swirl-idm2fwm", "bootstrap"} <= set(trainer_names())
    assert get_trainer("sft") is swirl_core.SFTTrainer and get_trainer("bootstrap") is swirl_core.BootstrapTrainer
    assert get_trainer("swirl-idm2fwm").config_class().mode == "idm2fwm"
    with pytest.raises(UnknownNameError, match="unknown trainer 'sfft'; known: .*sft.*swirl"):
        get_trainer("sfft")


def test_register_trainer_checks_the_protocol():
    class NoTrain:
        config_class = SFTConfig

    with pytest.raises(SwirlError, match="train"):
        register_trainer("nope", NoTrain)

    class Mine(swirl_core.SFTTrainer):
        name = "mine"

    register_trainer("mine", Mine)
    try:
        assert get_trainer("mine") is Mine and "mine" in trainer_names()
        with pytest.raises(SwirlError, match="already registered"):
            register_trainer("mine", swirl_core.SFTTrainer)
    finally:
        TRAINERS.unregister("mine")


def test_plugin_trainer_is_listed_lazily_loaded_and_run(plugins, tmp_path):
    assert "acme-count" in trainer_names() and "broken" in trainer_names()
    assert "acme_trainers" not in sys.modules  # listing read metadata only
    cls = get_trainer("acme-count")
    assert sys.modules["acme_trainers"].IMPORTED and "broken_trainers" not in sys.modules
    config = apply_overrides(cls.config_class(), ["note=from the CLI", "seed=7"])
    out = cls(config).train([_transition(i) for i in range(3)], tmp_path / "run")
    assert out.joinpath("count.json").read_text() == '{"n": 3, "note": "from the CLI"}'
    # The broken plugin is reported with its distribution, and the built-ins keep working.
    with pytest.raises(SwirlError, match="broken-trainers 0.1 failed to load: ImportError: no CUDA toolkit"):
        get_trainer("broken")
    status = {p.name: p for p in trainer_plugins()}
    assert status["broken"].status == "failed" and status["acme-count"].status == "loaded"
    assert get_trainer("swirl") is swirl_core.SwirlTrainer


def test_codecs_recorded_in_pair_json_are_rebuilt(tmp_path):
    from swirl_core.image_codec import CodecConfig, ImageCodec

    assert type(load_codec("swirl_core.image_codec:ImageCodec")) is ImageCodec  # unfitted: constructed
    codec = ImageCodec(CodecConfig(image_size=(8, 8), codebook_size=2, iters=1)).fit([[[[0, 0, 0]] * 8] * 8])
    codec.save(tmp_path / "codec")
    rebuilt = load_codec("swirl_core.image_codec:ImageCodec", tmp_path / "codec")
    assert rebuilt.config == codec.config and (rebuilt.codebook == codec.codebook).all()
    assert type(load_codec("collections:OrderedDict")).__name__ == "OrderedDict"  # a user's own class: imported
    with pytest.warns(UserWarning, match="could not rebuild image codec 'nowhere:Codec'"):
        assert load_codec("nowhere:Codec") is None


def _transition(i):
    from swirl_envs import Transition

    return Transition(f"s{i}", f"s{i + 1}", None, "e", i)


def test_overrides_are_typed_nested_and_checked():
    config = apply_overrides(SwirlConfig(), ["learning_rate=3e-4", "iterations=2", "progress=false",
                                             "tiny.hidden_size=32", "phase_order=idm,fwm", "limit=none",
                                             "idm_model=./idm", "save_steps=1e1"])
    assert config.learning_rate == 3e-4 and config.iterations == 2 and config.progress is False
    assert config.tiny.hidden_size == 32 and SwirlConfig().tiny.hidden_size == 128  # default untouched
    assert config.phase_order == ("idm", "fwm") and config.limit is None and config.save_steps == 10
    assert apply_overrides(SwirlConfig(), {"beta": 0.1}).beta == 0.1
    with pytest.raises(SwirlError, match="unknown config key 'lerning_rate'; known: .*learning_rate"):
        apply_overrides(SwirlConfig(), ["lerning_rate=1"])
    with pytest.raises(SwirlError, match="iterations must be an int"):
        apply_overrides(SwirlConfig(), ["iterations=1.5"])
    with pytest.raises(SwirlError, match="mode must be"):
        apply_overrides(SwirlConfig(), ["mode=fwm2idm"])
    with pytest.raises(SwirlError, match="advantage_scale must be one of group, batch, none, best, got 'std'"):
        apply_overrides(SwirlConfig(), ["advantage_scale=std"])
    with pytest.raises(SwirlError, match="key=value"):
        apply_overrides(SwirlConfig(), ["iterations"])
    assert "tiny.num_hidden_layers" in config_keys(config)


def test_paper_defaults_and_dict_roundtrip():
    c = SwirlConfig()
    assert (c.fwm_group_size, c.idm_group_size, c.iterations) == (8, 16, 3)
    assert (c.fwm_temperature, c.fwm_top_p, c.idm_temperature, c.idm_top_p) == (0.75, 0.96, 0.7, 0.9)
    assert (c.reward_min, c.annotate_min_logprob, c.loss_type, c.epsilon_low) == (-10.0, -2.0, "dapo", 0.2)
    assert c.reward_normalize and 0.04 <= c.beta <= 0.1

    @dataclass
    class Other(SwirlConfig):
        extra: int = 1

    changed = apply_overrides(Other(), ["tiny.vocab_size=99", "phase_order=idm,fwm"])
    assert from_dict(Other, to_dict(changed)) == changed


def test_format_value_is_what_parse_override_reads_back():
    from swirl_core.config import format_value, parse_override

    config = apply_overrides(SwirlConfig(), ["phase_order=idm,fwm", "idm_beta=none", "drop_flat_groups=true",
                                             'phase_steps={"fwm": 3}', "tiny.hidden_size=64"])
    for key in ("phase_order", "idm_beta", "drop_flat_groups", "phase_steps", "beta", "model"):
        value = getattr(config, key)
        assert parse_override(SwirlConfig, f"{key}={format_value(value)}") == (key, value)
    assert parse_override(SwirlConfig, 'phase_order=["idm","fwm"]') == ("phase_order", ("idm", "fwm"))  # JSON too

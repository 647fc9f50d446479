"""Which config changes a resumed run accepts: nested keys are compared one by one."""

from __future__ import annotations

import json

import pytest

from cnnjax.config import ConfigError, base_config
from cnnjax.train import run_info


def _saved(config) -> dict:
    return {"config": json.loads(json.dumps(config.to_dict(), default=str))}


def test_the_streaming_workers_may_change_on_resume_but_the_crops_may_not(tmp_path):
    saved = _saved(base_config())
    changed = base_config()
    changed.stream.worker_count, changed.stream.prefetch, changed.num_epochs = 8, 4, 99
    run_info.check_compatible(saved, changed, tmp_path / "run.json")  # accepted
    changed.stream.crop_size = 160
    with pytest.raises(ConfigError, match=r"stream\.crop_size: 224 -> 160"):
        run_info.check_compatible(saved, changed, tmp_path / "run.json")


def test_a_changed_model_option_is_named(tmp_path):
    saved = _saved(base_config())
    changed = base_config()
    changed.model_overrides.act = "relu"
    with pytest.raises(ConfigError, match=r"model_overrides\.act: None -> 'relu'"):
        run_info.check_compatible(saved, changed, tmp_path / "run.json")

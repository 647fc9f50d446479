"""Evaluation's choice of checkpoint while a training run rotates them away (real Orbax checkpoints)."""

import numpy as np

from cnnjax.evaluate.run import _restore
from tests.train.test_checkpoint import _rotating_run, _state


def test_the_best_step_is_chosen_again_when_it_is_rotated_away_before_it_is_read(tmp_path, monkeypatch):
    writer, reader = _rotating_run(tmp_path)
    choose = reader.best_step

    def choose_then_training_saves_step_2(**kwargs):
        chosen = choose(**kwargs)
        if chosen == 1:
            writer.save(2, _state(2.0), {"val_top1": None})
            writer.wait()  # retention deletes step 1
        return chosen

    monkeypatch.setattr(reader, "best_step", choose_then_training_saves_step_2)
    step, restored, _ = _restore(reader, None, _state(0.0))
    assert step == 2 and np.array_equal(restored["params"]["w"], np.full(3, 2.0))
    writer.close()
    reader.close()

"""eval reads only params/batch_stats and only the data its split needs, and scores as the full restore did."""

import numpy as np

import cnnjax.evaluate.run as run
from cnnjax.config import base_config
from cnnjax.data import splits
from cnnjax.data.pipeline import replicate
from cnnjax.evaluate.exact import classification_metrics, make_predict_fn, predict_logits
from cnnjax.train import experiment
from cnnjax.train.checkpoint import open_read_only
from cnnjax.train.loop import train_and_evaluate


def test_partial_restore_scores_like_the_whole_train_state_and_loads_only_its_split(tmp_path, monkeypatch):
    c = base_config()
    c.num_train_examples, c.validation_size, c.batch_size, c.num_epochs = 64, 200, 32, 1
    c.progress_bar = False
    train_and_evaluate(c, tmp_path)

    loaded = []
    original = splits.load_split  # where load_datasets reads each split
    monkeypatch.setattr(splits, "load_split", lambda name, split, data_dir="": loaded.append(split) or
                        original(name, split, data_dir))
    result = run.evaluate_workdir(tmp_path, "validation")
    assert loaded == ["train"]  # the validation carve and the normalisation statistics; never test

    exp = experiment.build(c)  # the old way: every split, a whole TrainState with optimizer moments
    with open_read_only(tmp_path) as ckpt:
        state, _ = ckpt.restore(ckpt.best_step(), exp.init_state())
    logits = predict_logits(make_predict_fn(exp.model, exp.data.mean, exp.data.std, exp.mesh),
                            {"params": state.params, "batch_stats": state.batch_stats},
                            replicate(exp.data.validation, exp.mesh), 100, exp.mesh)
    want = classification_metrics(logits, exp.data.validation.labels)
    assert result["num_examples"] == want["num_examples"] == 200
    assert result["top1"] == want["top1"] and np.isclose(result["nll"], want["nll"], rtol=1e-6)

"""Reference material for reproducing the literature: published figures, the papers' training recipes, and
the `cnnjax report` comparison of our models and evaluations against them.

Modules, each importing only the ones listed before it:

* `published` -- published params, MACs and top-1/top-5 per registry model, with sources (data)
* `recipes`   -- the papers' training recipes as configs (configs/imagenet, configs/cifar10 build on them)
* `results`   -- eval.py result JSON files -> evaluations; `ReportError`
* `report`    -- rows (ours vs published), the Markdown report and timm-schema CSVs
* `figure`    -- the top-1 vs GMACs figure (Canziani et al. 2016)
* `command`   -- the `cnnjax report` subcommand
"""

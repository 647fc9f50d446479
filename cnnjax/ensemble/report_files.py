"""The ensemble report on disk: report.json (atomic), report.md and three PNGs (matplotlib, headless)."""

from __future__ import annotations

import pathlib
from typing import Any, Sequence

import numpy as np

from cnnjax.groups import write_json_atomic, write_text_atomic
from cnnjax.plots import pyplot

JSON_NAME, MARKDOWN_NAME = "report.json", "report.md"
SIZE_CURVE_PNG, RELIABILITY_PNG, DISAGREEMENT_PNG = "size_curve.png", "reliability.png", "disagreement.png"


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _p_value(p: float) -> str:
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def markdown(analysis: dict[str, Any]) -> str:
    """A readable report: splits, members, combiners (with CI and McNemar), diversity, fitted weights, plots."""
    fit, rep = analysis["fit_split"], analysis["report_split"]
    best = analysis["best_member"]
    lines = ["# Ensemble report", "",
             f"Fitted and chosen on **{fit}** ({analysis['num_examples']['fit']} examples); scored on **{rep}** "
             f"({analysis['num_examples']['report']} examples). Best member (by {analysis['best_member_rule']}): "
             f"**{best}**. Fit-split scores of fitted combiners are cross-fitted "
             f"({analysis['settings']['folds']} stratified folds, seed {analysis['settings']['seed']}).", "",
             f"## Members ({rep} split)", ""]
    lines += _table(["member", "top1", "top5", "nll", "ece", "brier", f"{fit} top1", f"{fit} nll"],
                    [[m["name"], m["top1"], m["top5"], m["nll"], m["ece"], m["brier"], m["fit_top1"], m["fit_nll"]]
                     for m in analysis["members"]])
    lines += [f"## Combiners ({rep} split)", "",
              f"Δtop1 = combiner − {best}, with a paired-bootstrap 95% CI; McNemar b = {best} right & combiner "
              f"wrong, c = the reverse, p = exact two-sided binomial. NLL of vote is undefined (—).", ""]
    rows = []
    for name, c in analysis["combiners"].items():
        vs = c["vs_best"]
        rows.append([name, c["top1"], c["top5"], c["nll"], c["ece"], c["brier"], c["fit"]["top1"], c["fit"]["nll"],
                     f"{vs['diff']:+.4f} [{vs['ci_low']:+.4f}, {vs['ci_high']:+.4f}]",
                     f"{vs['mcnemar_b']}/{vs['mcnemar_c']}", _p_value(vs["mcnemar_p"]),
                     f"{analysis['timings'][name]:.2f}"])
    lines += _table(["combiner", "top1", "top5", "nll", "ece", "brier", f"{fit} top1", f"{fit} nll",
                     "Δtop1 [95% CI]", "b/c", "p", "seconds"], rows)
    lines += _fitted_section(analysis)
    div = analysis["diversity"]
    lines += ["## Diversity", "",
              f"- oracle top-1 (some member right): {_fmt(div['oracle_top1'])}",
              f"- mean pairwise disagreement: {_fmt(div['mean_disagreement'])}",
              f"- mean Yule's Q: {_fmt(div['mean_yules_q'])} (1 = members right and wrong together)",
              f"- mean double fault: {_fmt(div['mean_double_fault'])}", "",
              "## Ensemble size (mean of the best k members, ordered on the fit split)", ""]
    lines += _table(["k", "added", "top1", "nll"],
                    [[row["k"], row["members"][-1], row["top1"], row["nll"]] for row in analysis["size_curve"]])
    lines += ["## Plots", "", f"![size curve]({SIZE_CURVE_PNG})", f"![reliability]({RELIABILITY_PNG})",
              f"![disagreement]({DISAGREEMENT_PNG})", ""]
    return "\n".join(lines)


def _fitted_section(analysis: dict[str, Any]) -> list[str]:
    """Weights, greedy counts, temperatures and the in-sample (optimistic) fit scores of the fitted combiners."""
    lines = []
    for name, c in analysis["combiners"].items():
        info = c["info"]
        facts = [f"{key}: " + ", ".join(f"{member} {_fmt(v, 3)}" for member, v in info[key].items() if v >= 5e-4)
                 for key in ("counts", "weights") if key in info and not (name == "greedy" and key == "weights")]
        if "temperature" in info:
            facts.append(f"temperature: {info['temperature']:.3f}")
        if "in_sample_fit" in info:
            facts.append(f"in-sample fit top1 {info['in_sample_fit']['top1']:.4f} / nll "
                         f"{info['in_sample_fit']['nll']:.4f} (vs cross-fitted {c['fit']['top1']:.4f} / "
                         f"{_fmt(c['fit']['nll'])})")
        if "model" in info:
            facts.append(f"meta-learner: {info['model']}, {info['iterations']} L-BFGS iterations"
                         + ("" if info["converged"] else " (NOT converged)"))
        lines += [f"- **{name}**: " + "; ".join(facts)] if facts else []
    return ["## Fitted combiners", "", *lines, ""] if lines else []


def size_curve_png(analysis: dict[str, Any], path: pathlib.Path) -> pathlib.Path:
    plt = pyplot()
    curve = analysis["size_curve"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
    ks = [row["k"] for row in curve]
    top.plot(ks, [row["top1"] for row in curve], marker="o")
    bottom.plot(ks, [row["nll"] for row in curve], marker="o", color="tab:red")
    top.set_ylabel(f"{analysis['report_split']} top-1")
    bottom.set_ylabel(f"{analysis['report_split']} NLL")
    bottom.set_xlabel("members in the mean ensemble (best first on the fit split)")
    bottom.set_xticks(ks)
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    return _save(fig, path)


def reliability_png(analysis: dict[str, Any], path: pathlib.Path) -> pathlib.Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    curves = {f"best member ({analysis['best_member']})": analysis["reliability"]["best_member"],
              **analysis["reliability"]["combiners"]}
    for label, bins in curves.items():
        filled = [b for b in bins if b["count"]]
        ax.plot([b["confidence"] for b in filled], [b["accuracy"] for b in filled], marker="o", label=label)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability ({analysis['report_split']} split, {len(analysis['reliability']['best_member'])} bins)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def disagreement_png(analysis: dict[str, Any], path: pathlib.Path) -> pathlib.Path:
    plt = pyplot()
    names = [_short(m["name"]) for m in analysis["members"]]
    matrix = np.array(analysis["diversity"]["disagreement"], np.float64)
    n = len(names)
    fig, ax = plt.subplots(figsize=(2 + 0.6 * n, 1.5 + 0.6 * n))
    image = ax.imshow(matrix, cmap="viridis", vmin=0)
    fig.colorbar(image, ax=ax, label="fraction of examples with different argmax")
    if n <= 30:
        ax.set_xticks(range(n), names, rotation=90)
        ax.set_yticks(range(n), names)
    ax.set_title(f"pairwise disagreement ({analysis['report_split']} split)")
    return _save(fig, path)


def _short(name: str, width: int = 24) -> str:
    """A member name that fits an axis label: its tail (where workdirs differ) after an ellipsis."""
    return name if len(name) <= width else "…" + name[-(width - 1):]


def _save(fig, path: pathlib.Path) -> pathlib.Path:
    plt = pyplot()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_report(analysis: dict[str, Any], out_dir: pathlib.Path) -> list[pathlib.Path]:
    """report.json, report.md, size_curve.png, reliability.png, disagreement.png in `out_dir` (created)."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_json_atomic(out_dir / JSON_NAME, analysis), write_text_atomic(out_dir / MARKDOWN_NAME,
                                                                                     markdown(analysis))]
    written += [size_curve_png(analysis, out_dir / SIZE_CURVE_PNG),
                reliability_png(analysis, out_dir / RELIABILITY_PNG),
                disagreement_png(analysis, out_dir / DISAGREEMENT_PNG)]
    return written

"""Per-layer summaries: shapes, the in-place activation-memory convention, and the lecture's VGG-16 table."""

from __future__ import annotations

import pytest

from cnnjax.introspect import format_summary, summarize


def counted(summary) -> list[tuple[tuple[int, ...], int]]:
    return [(r.shape, r.activations) for r in summary.rows if r.counted]


def test_lenet5_rows():
    s = summarize("lenet5")
    assert counted(s) == [
        ((28, 28, 1), 784), ((32, 32, 1), 1024),  # input, zero-padded to 32x32
        ((28, 28, 6), 4704), ((14, 14, 6), 1176),  # C1, S2
        ((10, 10, 16), 1600), ((400,), 400),  # C3, S4 (+ flatten, a view merged into the pooling row)
        ((120,), 120), ((84,), 84), ((10,), 10)]
    assert [r.op for r in s.rows if r.kind == "in-place"] == ["Activation(tanh)"] * 4
    assert s.activations == 9902 and s.params == 61_706 and s.macs == 416_520
    assert [r.params for r in s.rows if r.params] == [156, 2416, 48_120, 10_164, 850]


def test_totals_are_the_sums_of_the_rows():
    s = summarize("resnet20", shortcut="B")
    assert sum(r.params for r in s.rows) == s.params == 272_474
    assert sum(r.macs for r in s.rows) == s.macs
    kinds = {r.op: r.kind for r in s.rows}
    assert kinds["Conv"] == "write" and kinds["BatchNorm"] == "in-place" and kinds["(add)"] == "in-place"
    assert kinds["Activation(relu)"] == "in-place"


def test_option_a_shortcut_is_a_functional_row_that_writes():
    rows = [r for r in summarize("resnet20").rows if r.op == "(slice+pad)"]
    assert [(r.path, r.shape, r.kind) for r in rows] == [
        ("BasicBlock_3", (16, 16, 32), "write"), ("BasicBlock_6", (8, 8, 64), "write")]


def test_mlp_flatten_is_a_view_and_options_apply():
    s = summarize("mlp", num_classes=3, hidden=(7,))
    assert [(r.op, r.kind) for r in s.rows[:2]] == [("input", "input"), ("(reshape)", "view")]
    assert s.rows[-1].shape == (3,) and s.params == 784 * 7 + 7 + 7 * 3 + 3


def test_input_size_option():
    s = summarize("resnet20", input_size=16)
    assert s.rows[0].shape == (16, 16, 3) and s.rows[-2].op == "(reduce_sum+div)"


# The CS231n table of seeds 002/003: INPUT, each CONV3 and POOL2 output, each FC output (ReLU in place).
LECTURE_VGG16 = [224 * 224 * 3] + [224 * 224 * 64] * 2 + [112 * 112 * 64] + [112 * 112 * 128] * 2 + [
    56 * 56 * 128] + [56 * 56 * 256] * 3 + [28 * 28 * 256] + [28 * 28 * 512] * 3 + [14 * 14 * 512] + [
    14 * 14 * 512] * 3 + [7 * 7 * 512] + [4096, 4096, 1000]


def test_vgg16_reproduces_the_lecture_table():
    s = summarize("vgg16")
    assert [a for _, a in counted(s)] == LECTURE_VGG16
    assert s.params == 138_357_544  # "TOTAL params: 138M"
    assert s.macs == 15_470_264_320
    # The rows sum to 15.2M values = 58 MB per image; the lecture's "24M x 4 bytes ~ 93MB" total does not
    # follow from its own rows (cs231n/cs231n.github.io#88), so the rows are what is reproduced.
    assert s.activations == sum(LECTURE_VGG16) == 15_237_608
    assert s.activation_mb == pytest.approx(58.13, abs=0.01)
    text = format_summary(s)
    assert "Total params: 138,357,544" in text and "15,237,608 values = 58.13 MB" in text


def test_every_parameter_is_attributed_to_a_row_in_a_branchy_net():
    s = summarize("googlenet", input_size=64)
    assert sum(r.params for r in s.rows) == s.params == 6_624_904
    assert any("concatenate" in r.op for r in s.rows)

"""Pictures: what each figure shows (labels, arrows, boxes, image data, curves), that the PNGs
are real images, and the command line on a fabricated run directory."""
import itertools
import json
import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.image import imread
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

import ops
from nas import cli
from nas import pictures as visualize
from nas.search.genotype_file import save_genotype
from supernet import FixedDartsNetwork, FixedUNet, Genotype, reduction_positions

# Four shapes of cell: mixed inputs; every node reading only the cell inputs (the most
# crowded drawing); a chain; and a node taking two ops from the same input.
MIXED = ((("sep_conv_3x3", 0), ("ghost", 1)), (("skip_connect", 0), ("sk", 2)),
         (("dil_conv_3x3", 1), ("max_pool_3x3", 3)), (("shuffle_conv_3x3", 4), ("ghost", 0)))
FROM_INPUTS = ((("sep_conv_3x3", 0), ("ghost", 1)), (("skip_connect", 0), ("sk", 1)),
               (("dil_conv_3x3", 0), ("max_pool_3x3", 1)), (("shuffle_conv_3x3", 0), ("ghost", 1)))
CHAIN = ((("sep_conv_3x3", 0), ("ghost", 1)), (("skip_connect", 2), ("sk", 1)),
         (("dil_conv_3x3", 3), ("max_pool_3x3", 2)), (("shuffle_conv_3x3", 4), ("ghost", 3)))
SAME_INPUT_TWICE = ((("sep_conv_3x3", 0), ("ghost", 0)), (("sk", 2), ("sk", 2)),
                    (("skip_connect", 1), ("dil_conv_3x3", 3)))
CELLS = {"mixed": MIXED, "from_inputs": FROM_INPUTS, "chain": CHAIN,
         "same_input_twice": SAME_INPUT_TWICE}
NODE_LABELS = {0: "$c_{k-2}$", 1: "$c_{k-1}$"}

_figures = {}


def _cell_figure(name):
    """Drawing a cell takes a while; every test of one cell looks at the same figure."""
    if name not in _figures:
        _figures[name] = visualize.cell_figure(CELLS[name])
    return _figures[name]


def _unet(middle=3, encoder=2):
    types = ("encoder",) * encoder + ("middle",) * middle + ("decoder",) * encoder
    return Genotype("unet", {"encoder": MIXED, "middle": FROM_INPUTS, "decoder": CHAIN}, types,
                    {"encoder": encoder, "middle": middle, "decoder": encoder}, 16, 3, 2,
                    primitives=ops.SEARCH_OPS)


def _darts(cells=8):
    reductions = reduction_positions(cells)
    types = tuple("reduce" if i in reductions else "normal" for i in range(cells))
    return Genotype("darts", {"normal": MIXED, "reduce": CHAIN}, types, {"cells": cells}, 16, 1,
                    1, primitives=ops.SEARCH_OPS, project_output=False)


def _assert_png(path, min_side=200):
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert min(image.shape[:2]) >= min_side
    rgb = np.round(image[..., :3] * 255).astype(np.uint32)
    colours = np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2])
    assert len(colours) > 1
    ink = np.mean(np.any(image[..., :3] < 0.9, axis=2))  # not blank: some pixels not white
    assert ink > 0.01


def _texts(figure):
    return [text.get_text() for ax in figure.axes for text in ax.texts]


def _arrows(figure, gid_prefix=""):
    return [p for p in figure.axes[0].patches if isinstance(p, FancyArrowPatch)
            and (p.get_gid() or "").startswith(gid_prefix)]


def _node_centres(figure, nodes):
    """Where the node names sit: 0, 1 the inputs, 2.. the nodes, 2 + nodes the output."""
    names = {**NODE_LABELS, **{2 + i: str(i) for i in range(nodes)}, 2 + nodes: "$c_{k}$"}
    by_text = {text.get_text(): np.array(text.get_position()) for text in figure.axes[0].texts}
    return {state: by_text[name] for state, name in names.items()}


def _arrow_ends(arrow, centres):
    """The nodes nearest to the start and the end of the arrow's shaft."""
    shaft = arrow.get_path().to_polygons(closed_only=False)[0]

    def nearest(point):
        return min(centres, key=lambda state: np.linalg.norm(centres[state] - point))
    return nearest(shaft[0]), nearest(shaft[-1])


# --------------------------------------------------------------------------------------------
# cells


@pytest.mark.parametrize("name", CELLS)
def test_cell_figure_labels_each_op_once_per_use_and_names_every_node(name):
    cell = CELLS[name]
    texts = Counter(_texts(_cell_figure(name)))
    used = Counter(op for node in cell for op, _ in node)
    for op in ops.list_ops():
        assert texts[op] == used[op], op
    for label in ["$c_{k-2}$", "$c_{k-1}$", "$c_{k}$"] + [str(i) for i in range(len(cell))]:
        assert texts[label] == 1, label


@pytest.mark.parametrize("name", CELLS)
def test_cell_arrows_join_the_genotypes_nodes(name):
    """2 arrows per node from its inputs, 1 per node into the output, each starting and
    ending at the right node."""
    cell = CELLS[name]
    figure = _cell_figure(name)
    arrows = _arrows(figure)
    assert len(arrows) == 3 * len(cell)
    centres = _node_centres(figure, len(cell))
    drawn = Counter(_arrow_ends(arrow, centres) for arrow in arrows)
    expected = Counter([(index, 2 + node) for node, pairs in enumerate(cell) for _, index in pairs]
                       + [(2 + node, 2 + len(cell)) for node in range(len(cell))])
    assert drawn == expected


def test_arrows_into_one_node_from_the_same_input_do_not_coincide():
    figure = _cell_figure("same_input_twice")
    centres = _node_centres(figure, 3)
    into_node0 = [a for a in _arrows(figure) if _arrow_ends(a, centres) == (0, 2)]
    first, second = (a.get_path().to_polygons(closed_only=False)[0] for a in into_node0)
    middle = lambda shaft: shaft[len(shaft) // 2]  # noqa: E731
    assert np.linalg.norm(middle(first) - middle(second)) > 0.2


def test_edge_colour_follows_the_op_and_parameter_free_ops_are_dashed():
    figure = _cell_figure("mixed")
    centres = _node_centres(figure, 4)
    op_of = {(index, 2 + node): op for node, pairs in enumerate(MIXED) for op, index in pairs}
    styles = {}
    for arrow in _arrows(figure):
        ends = _arrow_ends(arrow, centres)
        if ends in op_of:  # op edges; the rest run into the output
            styles.setdefault(op_of[ends], set()).add(
                (tuple(arrow.get_edgecolor()), arrow.get_linestyle()))
    assert all(len(seen) == 1 for seen in styles.values())  # ghost, used twice, looks the same
    colours = {op: next(iter(seen))[0] for op, seen in styles.items()}
    assert len(set(colours.values())) == len(colours)  # distinct ops, distinct colours
    for op, seen in styles.items():
        dashed = next(iter(seen))[1] in ("--", "dashed")
        assert dashed == (op in ops.PARAMETER_FREE_OPS), op
    # the colour is the op's, not the drawing's: the same in another cell
    other = _cell_figure("chain")
    sk_arrow = [a for a in _arrows(other)
                if _arrow_ends(a, _node_centres(other, 4)) == (1, 3)]
    assert tuple(sk_arrow[0].get_edgecolor()) == colours["sk"]


@pytest.mark.parametrize("name", CELLS)
def test_op_labels_overlap_neither_each_other_nor_the_nodes(name):
    figure = _cell_figure(name)
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)  # lays out the labels' boxes
    op_names = set(ops.list_ops())
    labels = [t.get_bbox_patch().get_window_extent(renderer) for t in figure.axes[0].texts
              if t.get_text() in op_names]
    nodes = [p.get_window_extent(renderer) for p in figure.axes[0].patches
             if isinstance(p, Circle)]
    assert len(labels) == 2 * len(CELLS[name])
    for a, b in itertools.combinations(labels, 2):
        assert not a.overlaps(b)
    for label, node in itertools.product(labels, nodes):
        assert not label.overlaps(node)


def test_plot_cells_writes_one_image_per_cell_type(tmp_path):
    paths = visualize.plot_cells(_unet(), tmp_path / "figs", prefix="u")
    assert [p.name for p in paths] == ["u_encoder.png", "u_middle.png", "u_decoder.png"]
    _assert_png(paths[0])
    assert all(p.stat().st_size > 10_000 for p in paths)


# --------------------------------------------------------------------------------------------
# macro


def _cell_boxes(figure):
    boxes = [p for p in figure.axes[0].patches
             if isinstance(p, FancyBboxPatch) and p.get_gid().startswith("cell:")]
    return sorted(boxes, key=lambda box: int(box.get_gid().split(":")[1]))


def _centre(box):
    return np.array([box.get_x() + box.get_width() / 2, box.get_y() + box.get_height() / 2])


def _label_in(figure, box):
    """The text written inside ``box``."""
    inside = [t.get_text() for t in figure.axes[0].texts
              if np.allclose(t.get_position(), _centre(box))]
    assert len(inside) == 1
    return inside[0]


@pytest.mark.parametrize("middle, encoder", [(3, 2), (0, 3)])
def test_u_macro_is_a_u_with_one_box_per_cell_and_one_skip_per_scale(middle, encoder):
    genotype = _unet(middle, encoder)
    network = FixedUNet(genotype)  # the network itself says what each cell is
    figure = visualize.macro_figure(genotype)
    boxes = _cell_boxes(figure)
    assert len(boxes) == len(genotype.cell_types)
    expected = [f"{kind}\n{width}ch  1/{2 ** level}" for kind, width, level in
                zip(network.cell_kinds, network.cell_widths, network.cell_levels)]
    assert [_label_in(figure, box) for box in boxes] == expected
    heights = [_centre(box)[1] for box in boxes]
    encoders, decoders = heights[:encoder], heights[encoder + middle:]
    assert all(a > b for a, b in zip(encoders, encoders[1:]))  # going down
    assert all(a < b for a, b in zip(decoders, decoders[1:]))  # coming back up
    assert all(y < min(encoders) for y in heights[encoder:encoder + middle])

    skips = _arrows(figure, "skip")
    assert len(skips) == encoder
    box_centres = [_centre(box) for box in boxes]
    for skip in skips:
        shaft = skip.get_path().to_polygons(closed_only=False)[0]
        assert np.allclose(shaft[:, 1], shaft[0, 1])  # horizontal
        start = min(range(len(boxes)), key=lambda i: np.linalg.norm(box_centres[i] - shaft[0]))
        end = min(range(len(boxes)), key=lambda i: np.linalg.norm(box_centres[i] - shaft[-1]))
        assert network.cell_kinds[start] == "encoder" and network.cell_kinds[end] == "decoder"
        assert network.cell_levels[start] == network.cell_levels[end]
    assert Counter(_texts(figure))["skip (concat)"] == encoder


def test_darts_macro_marks_the_reduction_cells():
    genotype = _darts()
    network = FixedDartsNetwork(genotype)
    figure = visualize.macro_figure(genotype)
    labels = [_label_in(figure, box) for box in _cell_boxes(figure)]
    assert len(labels) == 8
    reductions = [i for i, label in enumerate(labels) if label.startswith("reduce")]
    assert reductions == list(reduction_positions(8)) == [2, 5]
    assert [int(label.split("\n")[1].split("ch")[0]) for label in labels] == network.cell_widths
    assert labels[5] == "reduce ↓2\n64ch  1/4" and labels[6] == "normal\n64ch  1/4"
    assert len(_arrows(figure, "next")) == 8 + 1  # stem -> cells -> head
    assert not _arrows(figure, "skip")


def test_plot_macro_writes_an_image(tmp_path):
    _assert_png(visualize.plot_macro(_unet(), tmp_path / "macro.png"))


# --------------------------------------------------------------------------------------------
# alphas


def _softmax_history(epochs=3, keys=("encoder", "middle", "decoder"), edges=14, seed=0):
    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(epochs):
        alphas = {}
        for key in keys:
            logits = rng.normal(size=(edges, len(ops.SEARCH_OPS))) * (epoch + 1)
            alphas[key] = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        history.append(alphas)
    return history


def test_alpha_heat_map_shows_the_last_epoch_per_key_and_the_mean_per_op_over_epochs():
    history = _softmax_history()
    # the same numbers as an array, a nested list and a tensor
    given = [{"encoder": h["encoder"], "middle": h["middle"].tolist(),
              "decoder": torch.tensor(h["decoder"], requires_grad=True)} for h in history]
    figure = visualize.alpha_figure(given, ops.SEARCH_OPS)
    maps = [ax for ax in figure.axes if ax.images]
    assert len(maps) == 3
    for ax, key in zip(maps, ["encoder", "middle", "decoder"]):
        assert ax.get_title().startswith(key)
        np.testing.assert_allclose(ax.images[0].get_array(), history[-1][key], rtol=1e-6)
        assert [t.get_text() for t in ax.get_xticklabels()] == list(ops.SEARCH_OPS)
    rows = [t.get_text() for t in maps[0].get_yticklabels()]
    assert rows[:3] == ["node 0 ← $c_{k-2}$", "node 0 ← $c_{k-1}$", "node 1 ← $c_{k-2}$"]
    assert rows[-1] == "node 3 ← node 2" and len(rows) == 14
    curves = [ax for ax in figure.axes if ax.lines]
    assert len(curves) == 3
    middle_lines = {line.get_label(): line for line in curves[1].lines}
    assert set(middle_lines) == set(ops.SEARCH_OPS)
    sk = ops.SEARCH_OPS.index("sk")
    np.testing.assert_allclose(middle_lines["sk"].get_ydata(),
                               [h["middle"][:, sk].mean() for h in history])
    np.testing.assert_array_equal(middle_lines["sk"].get_xdata(), [1, 2, 3])


def test_alpha_heat_map_colours_span_the_weights_range_around_uniform():
    # a search decided by noise: every weight within 0.1244-0.1257 of the uniform 0.125
    weights = {"encoder": 0.125 + np.linspace(-6e-4, 7e-4, 14 * 8).reshape(14, 8)}
    figure = visualize.alpha_figure([weights], ops.SEARCH_OPS)
    (ax,) = [ax for ax in figure.axes if ax.images]
    norm = ax.images[0].norm
    assert norm.vmin == pytest.approx(0.1244) and norm.vmax == pytest.approx(0.1257)
    assert norm(0.125) == pytest.approx(0.5)  # uniform sits at the diverging map's centre
    assert norm(0.1244) == 0.0 and norm(0.1257) == 1.0


def test_alpha_heat_map_of_one_key_or_one_epoch():
    history = _softmax_history()
    figure = visualize.alpha_figure(history, ops.SEARCH_OPS, key="middle")
    (ax,) = [ax for ax in figure.axes if ax.images]
    np.testing.assert_allclose(ax.images[0].get_array(), history[-1]["middle"])
    single = visualize.alpha_figure(history[0], ops.SEARCH_OPS)  # a genotype's final alphas
    assert len([ax for ax in single.axes if ax.images]) == 3
    assert not [ax for ax in single.axes if ax.lines]  # no evolution from one epoch


@pytest.mark.parametrize("bad, message", [
    ([{"encoder": np.ones((14, 5))}], "shape (14, 5)"),
    ([{"encoder": np.ones(8)}], "expected (edges, 8)"),
    ([{"encoder": np.ones((14, 8))}, {"middle": np.ones((14, 8))}], "epoch 1 has alphas for"),
    ([{"encoder": np.ones((14, 8))}, {"encoder": np.ones((9, 8))}], "epoch 0 (14, 8)"),
])
def test_alpha_heat_map_rejects_alphas_that_do_not_fit(bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        visualize.alpha_figure(bad, ops.SEARCH_OPS)
    with pytest.raises(ValueError, match="no alphas for key 'bottleneck'"):
        visualize.alpha_figure(_softmax_history(1), ops.SEARCH_OPS, key="bottleneck")


# --------------------------------------------------------------------------------------------
# training curves


def _search_log(epochs=6):
    e = np.arange(epochs, dtype=float)
    return pd.DataFrame({
        "epoch": e, "train_loss": 1 / (e + 1), "val_loss": 1.2 / (e + 1),
        "val_dsc": np.where(e % 2 == 1, 0.5 + e / 20, np.nan), "val_miou": 0.4 + e / 20,
        "expected_params_M": 2 - e / 10, "expected_flops_G": 3 - e / 10,
        "derived_params_M": 1.5 - e / 20, "derived_flops_G": 2.5 - e / 20,
        "parameter_free_share": e / 12, "weight_lr": 0.025 * 0.5 ** e, "seconds": 60 + e})


def _lines(figure):
    return {line.get_gid(): line for ax in figure.axes for line in ax.lines}


def test_training_curves_draw_each_logged_column_in_its_panel():
    log = _search_log()
    figure = visualize.training_curves_figure(log)
    titles = [ax.get_title() for ax in figure.axes]
    assert titles == ["loss", "validation overlap", "parameters (M)", "FLOPs (G)",
                      "parameter-free share", "learning rate"]
    lines = _lines(figure)
    assert set(lines) == set(log.columns) - {"epoch", "seconds"}
    np.testing.assert_allclose(lines["expected_flops_G"].get_ydata(), log["expected_flops_G"])
    np.testing.assert_allclose(lines["train_loss"].get_xdata(), log["epoch"])
    # validation logged every other epoch: the points present, joined
    np.testing.assert_allclose(lines["val_dsc"].get_xdata(), [1, 3, 5])
    np.testing.assert_allclose(lines["val_dsc"].get_ydata(), [0.55, 0.65, 0.75])
    assert figure.axes[titles.index("learning rate")].get_yscale() == "log"


def test_training_curves_skip_missing_columns(tmp_path):
    retrain = _search_log()[["epoch", "train_loss", "val_loss", "val_dsc", "val_miou"]].assign(
        lr=0.01, seconds=1.0)
    path = tmp_path / "log.csv"
    retrain.to_csv(path, index=False)
    figure = visualize.training_curves_figure(path)
    assert [ax.get_title() for ax in figure.axes] == ["loss", "validation overlap",
                                                      "learning rate"]
    assert figure.axes[2].get_yscale() == "linear"  # a constant rate spans no decade
    only = visualize.training_curves_figure(retrain, columns=["val_miou", "derived_flops_G"])
    assert list(_lines(only)) == ["val_miou"]
    with pytest.raises(ValueError, match="nothing to plot"):
        visualize.training_curves_figure(retrain[["epoch", "seconds"]])
    _assert_png(visualize.plot_training_curves(path, tmp_path / "curves.png"))


# --------------------------------------------------------------------------------------------
# command line


def test_cli_draws_every_picture_of_a_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    genotype = _unet(middle=1)
    history = _softmax_history(epochs=2)
    save_genotype(run / "genotype.json", genotype,
                  alphas={k: v.tolist() for k, v in history[-1].items()})
    (run / "alphas.json").write_text(json.dumps({
        "epochs": [{k: v.tolist() for k, v in h.items()} for h in history],
        "primitives": list(ops.SEARCH_OPS)}))
    _search_log().to_csv(run / "log.csv", index=False)

    assert cli.main(["visualize", str(run), "--out", str(tmp_path / "figs")]) == 0
    names = ["cell_encoder.png", "cell_middle.png", "cell_decoder.png", "macro.png",
             "alphas.png", "training_curves.png"]
    printed = capsys.readouterr().out.split()
    assert sorted(printed) == sorted(str(tmp_path / "figs" / name) for name in names)
    _assert_png(tmp_path / "figs" / "alphas.png")


def test_cli_on_a_genotype_file_and_on_bad_input(tmp_path, capsys):
    path = save_genotype(tmp_path / "best.json", _darts(cells=3))
    assert cli.main(["visualize", str(path)]) == 0
    assert sorted(p.name for p in (tmp_path / "best_figures").iterdir()) == [
        "cell_normal.png", "cell_reduce.png", "macro.png"]
    assert cli.main(["visualize", str(tmp_path / "missing.json")]) == 1
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{")
    assert cli.main(["visualize", str(tmp_path / "broken.json")]) == 1
    assert "not valid JSON" in capsys.readouterr().err

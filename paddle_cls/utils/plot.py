"""The course's training figures (nndl `plot_training_loss_acc`), and the confusion matrix and prediction figures,
drawn with an installed CJK font where class names need one."""
from __future__ import annotations

import contextlib
import functools
import warnings
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib import font_manager
from matplotlib.figure import Figure

from .logger import logger

# Fonts with Chinese, Japanese and Korean glyphs, in the order tried: Debian's and Fedora's Noto CJK packages and
# Adobe's release of the same fonts, then those Windows, macOS and older Linux systems ship.
CJK_FONTS = (
    "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK HK", "Noto Sans CJK JP", "Noto Sans CJK KR",
    "Source Han Sans SC", "Source Han Sans CN", "Source Han Sans",
    "Microsoft YaHei", "SimHei", "DengXian", "Yu Gothic", "Meiryo", "MS Gothic", "Malgun Gothic",
    "PingFang SC", "Hiragino Sans GB", "Heiti SC", "STHeiti", "Hiragino Sans", "Apple SD Gothic Neo",
    "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", "Droid Sans Fallback", "Noto Sans SC", "Noto Sans JP",
    "Noto Sans KR", "NanumGothic", "Arial Unicode MS",
)
NO_FONT_ADVICE = ("no installed font has the characters {chars} of these labels (drawn as empty boxes); for Chinese, "
                  "Japanese or Korean install a CJK font: apt-get install fonts-noto-cjk (Debian, Ubuntu) or "
                  "dnf install google-noto-sans-cjk-fonts (Fedora)")


@functools.lru_cache(maxsize=None)
def installed_cjk_fonts() -> Tuple[Tuple[str, str], ...]:
    """`(family, path)` of each installed font of `CJK_FONTS`, in that order; looked up once per process.

    Fonts installed after matplotlib cached its font list (~/.cache/matplotlib) are found too.
    """
    names = {entry.name for entry in font_manager.fontManager.ttflist}
    if not names.intersection(CJK_FONTS):
        known = {entry.fname for entry in font_manager.fontManager.ttflist}
        for path in font_manager.findSystemFonts():
            if path not in known:
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError, ValueError):  # a file FreeType cannot read: matplotlib skips it too
                    continue
        names = {entry.name for entry in font_manager.fontManager.ttflist}
    return tuple((name, font_manager.findfont(font_manager.FontProperties(family=name)))
                 for name in CJK_FONTS if name in names)


def font_families_for(texts: Iterable[str]) -> Tuple[Optional[List[str]], List[str]]:
    """The font families that draw every character of `texts`, and the characters none of them has.

    Returns:
        `(families, missing)`: `families` is None when the default font (rcParams) has every character, else
        the default font's family followed by the CJK fonts (see `CJK_FONTS`) needed for the rest, for
        matplotlib's per-character fallback; `missing` is the sorted characters no installed font has.
    """
    default = font_manager.get_font(font_manager.findfont(font_manager.FontProperties()))
    missing = {char for text in texts for char in str(text)
               if not char.isspace() and not default.get_char_index(ord(char))}
    if not missing:
        return None, []
    families = [default.family_name]
    for family, path in installed_cjk_fonts():
        covered = {char for char in missing if font_manager.get_font(path).get_char_index(ord(char))}
        if covered:
            families.append(family)
            missing -= covered
        if not missing:
            break
    return (families if len(families) > 1 else None), sorted(missing)


@contextlib.contextmanager
def fonts_for(texts: Iterable[str]) -> Iterator[None]:
    """Draw what the block creates with the default font and, for characters it lacks, installed CJK fonts.

    Where no installed font has some character, says in one line which package to install (instead of one
    matplotlib warning per character). Yields the font families used (None: the default alone).
    """
    families, missing = font_families_for(texts)
    with contextlib.ExitStack() as stack:
        if families:
            stack.enter_context(plt.rc_context({"font.family": families}))
        if missing:
            logger.warning(NO_FONT_ADVICE.format(chars=" ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")))
            stack.enter_context(warnings.catch_warnings())
            warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        yield families


def _show_or_close(fig):
    # Notebooks display the figure; headless runs (the Agg backend) just free it.
    if matplotlib.get_backend().lower() == "agg":
        plt.close(fig)


def plot_training_loss_acc(runner: Any, fig_name: str, fig_size: Tuple[float, float] = (16, 6), sample_step: int = 20,
                           loss_legend_loc: str = "upper right", acc_legend_loc: str = "lower right",
                           train_color: str = "#8E004D", dev_color: str = "#E20079", fontsize: str = "x-large",
                           train_linestyle: str = "-", dev_linestyle: str = "--") -> Figure:
    """Plot a RunnerV3's history as the course does and save it to `fig_name`.

    Left: the training loss every `sample_step`-th step and the dev loss at each evaluation.
    Right: the dev accuracy at each evaluation (when there was one).

    Returns:
        The matplotlib figure.
    """
    fig = plt.figure(figsize=fig_size)
    plt.subplot(1, 2, 1)
    train_items = runner.train_step_losses[::sample_step]
    plt.plot([step for step, _ in train_items], [loss for _, loss in train_items],
             color=train_color, linestyle=train_linestyle, label="Train loss")
    dev_steps = [step for step, _ in runner.dev_losses]
    if dev_steps:
        plt.plot(dev_steps, [loss for _, loss in runner.dev_losses],
                 color=dev_color, linestyle=dev_linestyle, label="Dev loss")
    plt.ylabel("loss", fontsize=fontsize)
    plt.xlabel("step", fontsize=fontsize)
    plt.legend(loc=loss_legend_loc, fontsize=fontsize)
    if runner.dev_scores:
        plt.subplot(1, 2, 2)
        plt.plot(dev_steps, runner.dev_scores, color=dev_color, linestyle=dev_linestyle, label="Dev accuracy")
        plt.ylabel("score", fontsize=fontsize)
        plt.xlabel("step", fontsize=fontsize)
        plt.legend(loc=acc_legend_loc, fontsize=fontsize)
    plt.savefig(fig_name)
    _show_or_close(fig)
    return fig


def plot_validation_accuracy(history: Any, fig_name: str) -> Figure:
    """The Paddle 2.0 tutorial's figure (000): validation accuracy per epoch."""
    fig = plt.figure()
    epochs = [row["epoch"] for row in history.rows if row["dev_accuracy"] is not None]
    plt.plot(epochs, [row["dev_accuracy"] for row in history.rows if row["dev_accuracy"] is not None],
             label="validation accuracy")
    plt.xlabel("Epoch")
    plt.ylabel("Accuracy")
    plt.legend(loc="lower right")
    plt.savefig(fig_name)
    _show_or_close(fig)
    return fig


def plot_loss_and_accuracy(history: Any, fig_name: str, fig_size: Tuple[float, float] = (4, 3)) -> Figure:
    """The PyTorch MNIST tutorial's twin-axis figure (002): train loss (log scale) on the left axis,
    train and test accuracy (%) on the right, per epoch (counted from 1)."""
    fig, loss_axis = plt.subplots(figsize=fig_size)
    epochs = [row["epoch"] + 1 for row in history.rows]
    loss_axis.plot(epochs, history.column("train_loss"), "b-", label="train Loss")
    loss_axis.set_xlabel("Epoch")
    loss_axis.set_ylabel("Loss", color="b")
    loss_axis.tick_params(axis="y", labelcolor="b")
    loss_axis.set_yscale("log")
    if len(epochs) > 1:
        loss_axis.set_xlim([1, len(epochs)])
    accuracy_axis = loss_axis.twinx()
    for field, style, label in (("train_accuracy", "r-", "train accuracy"), ("dev_accuracy", "r--", "test accuracy")):
        points = [(row["epoch"] + 1, 100 * row[field]) for row in history.rows if row[field] is not None]
        if points:
            accuracy_axis.plot(*zip(*points), style, label=label)
    accuracy_axis.set_ylabel("Accuracy (%)", color="r")
    accuracy_axis.tick_params(axis="y", labelcolor="r")
    fig.legend()
    fig.savefig(fig_name, bbox_inches="tight")
    _show_or_close(fig)
    return fig


def plot_confusion_matrix(matrix: np.ndarray, label_names: Sequence[str], fig_name: str) -> Figure:
    """Counts of true (rows) against predicted (columns) classes, with the per-class accuracy in the row labels.

    Class names in Chinese, Japanese or Korean are drawn with an installed CJK font (see `fonts_for`).
    """
    totals = matrix.sum(axis=1)
    with fonts_for(label_names):
        fig, axis = plt.subplots(figsize=(1.0 + 0.7 * len(label_names), 0.8 + 0.6 * len(label_names)))
        axis.imshow(matrix, cmap="Blues")
        axis.set_xticks(range(len(label_names)), label_names, rotation=45, ha="right")
        rows = [f"{name} ({matrix[i, i] / totals[i]:.0%})" if totals[i] else name for i, name in enumerate(label_names)]
        axis.set_yticks(range(len(label_names)), rows)
        for (row, col), count in np.ndenumerate(matrix):
            axis.text(col, row, str(count), ha="center", va="center",
                      color="white" if count > matrix.max() / 2 else "black", fontsize=8)
        axis.set_xlabel("predicted")
        axis.set_ylabel("true")
        fig.tight_layout()
        fig.savefig(fig_name)
        _show_or_close(fig)
    return fig


def plot_predictions(images: Sequence[np.ndarray], titles: Sequence[str], fig_name: str) -> Figure:
    """A row of pictures (uint8 HWC, or HW for grey), each titled with its true and predicted labels.

    Titles in Chinese, Japanese or Korean are drawn with an installed CJK font (see `fonts_for`).
    """
    with fonts_for(titles):
        fig, axes = plt.subplots(1, len(images), figsize=(2.2 * len(images), 2.6), squeeze=False)
        for axis, image, title in zip(axes[0], images, titles):
            axis.imshow(image, cmap="gray" if image.ndim == 2 else None)
            axis.set_title(title, fontsize=8)
            axis.axis("off")
        fig.tight_layout()
        fig.savefig(fig_name)
        _show_or_close(fig)
    return fig

"""Class names in Chinese, Japanese and Korean are drawn with an installed CJK font in the confusion matrix and the
prediction figure, never as empty boxes; without such a font one line says which package to install."""
import copy
import os
import warnings

import numpy as np
import pytest
from matplotlib import font_manager

from paddle_cls.utils import plot


@pytest.fixture
def cjk_font():
    """The first installed CJK font family, or skip saying why (CI installs one: there the tests must run)."""
    fonts = plot.installed_cjk_fonts()
    if not fonts:
        missing = "no CJK font is installed (apt-get install fonts-noto-cjk)"
        if os.environ.get("PADDLE_CLS_REQUIRE_CJK_FONT"):
            pytest.fail(missing)
        pytest.skip(missing)
    return fonts[0][0]


@pytest.fixture
def fresh_font_lookup():
    """Forget the process's CJK font lookup before and after a test that changes what is installed."""
    plot.installed_cjk_fonts.cache_clear()
    yield
    plot.installed_cjk_fonts.cache_clear()


def _families(fig):
    """The font families of the texts that show labels: the confusion matrix's tick labels and counts, or the
    prediction figure's titles."""
    texts = []
    for axis in fig.axes:
        texts += [axis.title] if axis.title.get_text() else axis.get_xticklabels() + axis.get_yticklabels() + axis.texts
    return [text.get_fontfamily() for text in texts]


def _draw_both(tmp_path, names, titles):
    """Draw the confusion matrix of `names` and the prediction figure of `titles`, with every matplotlib
    "Glyph ... missing from font(s)" warning turned into an error."""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Glyph .* missing from font", category=UserWarning)
        matrix = plot.plot_confusion_matrix(np.arange(len(names) ** 2).reshape(len(names), -1), names,
                                            str(tmp_path / "confusion_matrix.png"))
        pictures = plot.plot_predictions([np.zeros((8, 8), np.uint8)] * len(titles), titles,
                                         str(tmp_path / "predictions.png"))
    assert os.path.getsize(tmp_path / "confusion_matrix.png") > 5_000
    assert os.path.getsize(tmp_path / "predictions.png") > 2_000
    return matrix, pictures


def test_chinese_class_names_are_drawn_with_a_cjk_font(tmp_path, cjk_font):
    names = ["猫", "狗", "兔子", "金鱼"]  # as class folders or a class map name them
    matrix, pictures = _draw_both(tmp_path, names, ["true: 猫\npred: 狗", "true: 兔子\npred: 兔子"])
    default = font_manager.get_font(font_manager.findfont(font_manager.FontProperties())).family_name
    assert default == "DejaVu Sans"  # matplotlib's, which has no CJK glyph: the CJK font comes second
    assert _families(matrix) == [[default, cjk_font]] * (2 * len(names) + len(names) ** 2)
    assert _families(pictures) == [[default, cjk_font]] * 2
    assert [label.get_text() for label in matrix.axes[0].get_xticklabels()] == names


def test_japanese_korean_and_mixed_script_labels_are_drawn_and_plain_ones_keep_the_default(tmp_path, cjk_font):
    matrix, pictures = _draw_both(tmp_path, ["ねこ", "고양이", "cat 猫"],
                                  ["true: ねこ (neko)\npred: 고양이", "pred: cat 猫"])
    assert plot.font_families_for(["ねこ", "고양이", "cat 猫"]) == (["DejaVu Sans", cjk_font], [])
    assert {tuple(families) for families in _families(matrix) + _families(pictures)} == {("DejaVu Sans", cjk_font)}
    plain, _ = _draw_both(tmp_path, ["cat", "dog", "señor"], ["true: cat\npred: dog"])
    assert plot.font_families_for(["cat", "dog", "señor"]) == (None, [])
    assert {tuple(families) for families in _families(plain)} == {("sans-serif",)}  # rcParams' default


def test_without_a_cjk_font_one_line_says_which_package_to_install(tmp_path, monkeypatch, capsys,
                                                                 fresh_font_lookup):
    monkeypatch.setattr(plot, "CJK_FONTS", ("No Such Font",))  # a machine with none of them installed
    assert plot.installed_cjk_fonts() == ()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        matrix = plot.plot_confusion_matrix(np.eye(2, dtype=int), ["猫", "狗"], str(tmp_path / "matrix.png"))
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["no installed font has the characters 狗 猫 of these labels (drawn as empty boxes); for Chinese, "
                     "Japanese or Korean install a CJK font: apt-get install fonts-noto-cjk (Debian, Ubuntu) or "
                     "dnf install google-noto-sans-cjk-fonts (Fedora)"]
    assert not [w for w in caught if "missing from font" in str(w.message)]  # the one line instead
    assert {tuple(families) for families in _families(matrix)} == {("sans-serif",)}
    assert os.path.getsize(tmp_path / "matrix.png") > 2_000


def test_a_font_installed_after_matplotlib_listed_the_fonts_is_found(monkeypatch, cjk_font, fresh_font_lookup):
    # matplotlib keeps its font list in ~/.cache/matplotlib: a font installed later is missing from it
    stale = copy.copy(font_manager.fontManager)
    files = {entry.fname for entry in stale.ttflist if entry.name in plot.CJK_FONTS}
    stale.ttflist = [entry for entry in stale.ttflist if entry.fname not in files]
    monkeypatch.setattr(font_manager, "fontManager", stale)
    assert plot.installed_cjk_fonts()[0][0] == cjk_font
    assert cjk_font in {entry.name for entry in stale.ttflist}

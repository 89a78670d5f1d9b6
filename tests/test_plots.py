"""What the training curves show: whole-number epoch ticks, the kept epoch marked."""
from __future__ import annotations

from mmsa_cli.training.metrics import training_curves_figure


def test_curves_mark_the_best_epoch_on_integer_ticks():
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 0.8, "train_accuracy": 0.5 + 0.05 * e,
                "val_accuracy": 0.7 - 0.01 * abs(e - 3)} for e in range(1, 6)]
    fig = training_curves_figure(history, "ensemble", best_epoch=3)
    for ax in fig.axes:
        ax.figure.canvas.draw()
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks)
        marks = [line for line in ax.get_lines() if line.get_label().startswith("best epoch")]
        assert len(marks) == 1 and list(marks[0].get_xdata()) == [3, 3]

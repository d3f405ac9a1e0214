"""The course's training figures (nndl `plot_training_loss_acc`)."""
import matplotlib
import matplotlib.pyplot as plt
import numpy as np


def _show_or_close(fig):
    # Notebooks display the figure; headless runs (the Agg backend) just free it.
    if matplotlib.get_backend().lower() == "agg":
        plt.close(fig)


def plot_training_loss_acc(runner, fig_name, fig_size=(16, 6), sample_step=20, loss_legend_loc="upper right",
                           acc_legend_loc="lower right", train_color="#8E004D", dev_color="#E20079",
                           fontsize="x-large", train_linestyle="-", dev_linestyle="--"):
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


def plot_validation_accuracy(history, fig_name):
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


def plot_loss_and_accuracy(history, fig_name, fig_size=(4, 3)):
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


def plot_confusion_matrix(matrix, label_names, fig_name):
    """Counts of true (rows) against predicted (columns) classes, with the per-class accuracy in the row labels."""
    totals = matrix.sum(axis=1)
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


def plot_predictions(images, titles, fig_name):
    """A row of pictures (uint8 HWC, or HW for grey), each titled with its true and predicted labels."""
    fig, axes = plt.subplots(1, len(images), figsize=(2.2 * len(images), 2.6), squeeze=False)
    for axis, image, title in zip(axes[0], images, titles):
        axis.imshow(image, cmap="gray" if image.ndim == 2 else None)
        axis.set_title(title, fontsize=8)
        axis.axis("off")
    fig.tight_layout()
    fig.savefig(fig_name)
    _show_or_close(fig)
    return fig

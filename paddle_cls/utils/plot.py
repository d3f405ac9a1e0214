"""The course's training figures (nndl `plot_training_loss_acc`)."""
import matplotlib
import matplotlib.pyplot as plt


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

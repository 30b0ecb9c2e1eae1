"""train_refiner: SimGAN's S+U training. Reads synthetic images and *only the images* of the
real train split (never real labels); writes the selected refiner and its training report."""

from __future__ import annotations

from pathlib import Path

from simgan.core.dataset import open_images
from simgan.core.errors import UserError
from simgan.core.ingest.common import NoLabelsError
from simgan.core.launch import is_main_process
from stages.artifacts import example_batch, load_torch, save_torch, write_json
from stages.common import StageContext, log_datasets, log_model, main, tracked
from stages.layout import declared_refiner_labels


class UndeclaredLabelSourceError(UserError):
    """The params make the refiner's label model come from a path dvc.yaml does not list as
    the stage's dep: DVC would not rerun the refiner when that path changes."""


def run(ctx: StageContext) -> None:
    from simgan.core import plots, tracking
    from simgan.core.refiner.net import refiner_file
    from simgan.core.refiner.trainer import train_refiner

    section = ctx.params.refiner
    check_label_source(ctx)
    synthetic = open_images(ctx.layout.synthetic("train"))
    real = open_images(ctx.layout.real("train"))
    report_dir = ctx.layout.refiner_report
    with tracked(ctx, "train_refiner", section.model_dump(mode="json")):
        log_datasets(ctx, {"synthetic/train": ctx.layout.synthetic("train"),
                           "real/train": ctx.layout.real("train")}, "training")

        def on_samples(step: int, syn, ref, rea) -> None:
            png = plots.grid_png({"synthetic": syn, "refined": ref, "real": rea})
            tracking.log_png(png, f"samples/step_{step:06d}.png")

        result = train_refiner(
            synthetic,
            real,
            section.net,
            section.discriminator,
            section.train,
            ctx.layout.refiner_checkpoints,
            on_metrics=tracking.log_metrics,
            on_samples=on_samples,
            select_by=ctx.task.refiner_select_by(ctx.params),
            label_model=label_model(ctx),
        )
        if not is_main_process():  # DDP: rank 0 writes the outputs
            return
        warn_if_identity(ctx, result.selection)
        saved = refiner_file(result.selected_state, section.net, result.selection)
        save_torch(ctx.layout.refiner_model, saved)
        write_json(report_dir / "selection.json", result.selection)
        tracking.log_metrics({f"selected_{k}": v for k, v in result.selection.items()
                              if isinstance(v, (int, float))})
        log_model(ctx, "refiner", ctx.layout.refiner_model,
                  tracking.registered_refiner(ctx.task.name), example_batch(synthetic).shape)


def warn_if_identity(ctx: StageContext, selection: dict) -> None:
    """A refiner that made no change is a result, not a silent success: say so in the log,
    in selection.json (``identity``, ``identity_reason``) and as an MLflow tag."""
    import sys

    import mlflow

    from simgan.core.refiner.identity import capture_only_note, identity_reason

    reason = identity_reason(selection)
    selection["identity"] = reason is not None
    selection["identity_reason"] = reason or ""
    mlflow.set_tag("refiner_identity", str(reason is not None).lower())
    if reason is not None:
        print(f"[simgan] WARNING: train_refiner@{ctx.task.name}: the refiner made no change: "
              f"{reason}. The refined dataset will equal the synthetic one; see "
              f"reports/{ctx.task.name}/refiner/selection.json", file=sys.stderr)
    elif note := capture_only_note(selection):
        print(f"[simgan] train_refiner@{ctx.task.name}: {note}", file=sys.stderr)


def label_source(ctx: StageContext) -> Path | None:
    """What the label model is made from: the synthetic train set when the stage trains its
    own, the synthetic-trained estimator when it reads that one, None with no label term."""
    if ctx.params.refiner.train.lambda_label <= 0:
        return None
    if ctx.task.label_model_params(ctx.params) is not None:
        return ctx.layout.synthetic("train")
    return ctx.layout.estimator_model("synthetic").parent


def check_label_source(ctx: StageContext) -> None:
    """Before any work: the label model's source is the one dvc.yaml declares."""
    needed = label_source(ctx)
    declared = declared_refiner_labels(ctx.layout.root, ctx.task.name)
    if needed is None or declared is None or needed == declared:
        return
    root = ctx.layout.root
    name = ctx.task.name
    raise UndeclaredLabelSourceError(
        f"{name}.refiner.label_model: with these params the refiner's label model comes from "
        f"{needed.relative_to(root)}, but dvc.yaml declares {declared.relative_to(root)} "
        f"(vars: tasks.{name}.refiner_labels), so DVC would not rerun train_refiner@{name} "
        f"when it changes; set tasks.{name}.refiner_labels: {needed.relative_to(root)} in "
        "dvc.yaml")


def label_model(ctx: StageContext):
    """The frozen label model, when the label-consistency term is on: the synthetic-trained
    estimator, or one trained here with photometric augmentation (``refiner.label_model``).
    Either was trained on synthetic labels only: real labels still never reach the refiner.
    Which one is :func:`label_source`'s choice, the one dvc.yaml's dep is checked against."""
    source = label_source(ctx)
    if source is None:
        return None
    if source == ctx.layout.synthetic("train"):
        augmented = ctx.task.label_model_params(ctx.params)
        return train_label_model(ctx, augmented.model_dump(mode="json"))
    saved = load_torch(ctx.layout.estimator_model("synthetic"))
    if saved.get("state_dict") is None:
        raise NoLabelsError(f"{ctx.layout.estimator_model('synthetic')}: no trained estimator "
                         "(its training set has no labels); set refiner.train.lambda_label: 0")
    return ctx.task.label_model(ctx.params, saved["state_dict"])


def train_label_model(ctx: StageContext, estimator: dict):
    """Train the task's own label model on the synthetic training set (resumable, its own
    checkpoint directory), save it beside the refiner with its ``estimator`` params, and
    return its label reading."""
    from simgan.core import tracking
    from simgan.core.dataset import open_dataset

    synthetic = open_dataset(ctx.layout.synthetic("train"))
    print(f"[simgan] train_refiner@{ctx.task.name}: training the refiner's own label model "
          "(refiner.label_model) on the synthetic training set", flush=True)
    model = ctx.task.train_label_model(
        ctx.params, synthetic.images, synthetic.labels,
        ctx.layout.refiner_checkpoints / "label_model",
        lambda metrics, epoch: tracking.log_metrics(
            {f"label_model/{k}": v for k, v in metrics.items()}, epoch),
    )
    state = model.state_dict()
    save_torch(ctx.layout.label_model, {"state_dict": state, "estimator": estimator})
    return ctx.task.label_model(ctx.params, state)


if __name__ == "__main__":
    main("train_refiner", run)

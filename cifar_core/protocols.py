"""The two reports this study reproduces: every number they publish (`ANCHORS`) and every value of
the protocols the study runs (`PROTOCOLS`, the recipes among them), each with its source.

A value neither report gives is never credited to one (sources: report A, report B, the PyTorch
DCGAN tutorial report B took its code from, a PyTorch default, ours with the reason). No torch:
`cifar report` reads it. docs/provenance.md is rendered from here (tests/test_protocols.py).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


# --- sources -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    kind: str  # "report A" | "report B" | "tutorial" | "PyTorch" | "ours"
    where: str = ""  # a report's section; for "ours", the reason

    @property
    def label(self) -> str:
        """Short, for tables: "report A §IV.3", "ours"."""
        if self.kind in ("report A", "report B"):
            parts = [part if part == "abstract" else f"§{part}" for part in self.where.split(", ") if part]
            return " ".join([self.kind, ", ".join(parts)]) if parts else self.kind
        return {"tutorial": "PyTorch DCGAN tutorial", "PyTorch": "PyTorch default"}.get(self.kind, self.kind)

    @property
    def is_report(self) -> bool:
        return self.kind in ("report A", "report B")

    @property
    def whose(self) -> str:
        """Whose value it is, beside a run that differs from it: "report B §5", "this study's protocol"."""
        return "this study's protocol" if self.kind == "ours" else self.label


def report_a(section: str) -> Source:
    return Source("report A", section)


def report_b(section: str) -> Source:
    return Source("report B", section)


def ours(why: str) -> Source:
    return Source("ours", why)


def pytorch(what: str = "") -> Source:
    return Source("PyTorch", what)


TUTORIAL = Source("tutorial", "report B's reference [3], whose code report B says it took")


# --- published numbers ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Anchor:
    """One number (or claim) a report publishes."""

    key: str  # stable id, e.g. "a.cnn6.test"
    what: str
    value: float | int | str  # a string for what is not one number ("1-2" weeks, "SGD")
    unit: str  # "%", "points", "parameters", "FID", "steps", "epochs", "images", "trials", "loss", ...
    source: Source
    spread: float | None = None  # the report's "±" (report B never says over what)
    qualifier: str = ""  # the report's own hedge, as it writes it: "about", "more than", "over"
    not_measured: str = ""  # why this study does not measure it; "" for every number it does

    @property
    def text(self) -> str:
        value = self.value if isinstance(self.value, str) else \
            f"{self.value:,}" if isinstance(self.value, int) else f"{self.value:g}"
        spread = f" ± {self.spread:g}" if self.spread is not None else ""
        return " ".join(part for part in (self.qualifier, with_unit(f"{value}{spread}", self.unit)) if part)


# How a number in each unit is written: "60.1%", "46,000 steps"; FID, loss and plain counts bare.
UNIT_SUFFIX = {"%": "%", "points": " points", "minutes": " minutes", "weeks": " weeks", "times": " times",
               "steps": " steps", "epochs": " epochs", "images": " images", "parameters": " parameters",
               "trials": " trials"}


def with_unit(number: str, unit: str) -> str:
    """A number's text with its unit, as the reports write it (ours are written the same way): "1 epoch"."""
    suffix = UNIT_SUFFIX.get(unit, "")
    return number + (suffix.removesuffix("s") if number == "1" and suffix.startswith(" ") else suffix)


@dataclass(frozen=True)
class ReportAModel:
    """One of report A's three final models, as section IV lists it."""

    label: str  # the report's name
    model: str  # ours in the registry (layout chosen to match the parameter count: see cnn.py)
    activation: str
    lr: float
    momentum: float
    dampening: float
    test_top1_pct: float  # section V.A
    parameters: int  # section VII


REPORT_A_MODELS = (
    ReportAModel("CNN6", "cnn6", "relu", 0.004278, 0.00958, 0.0946, 60.1, 2_494_022),
    ReportAModel("CNN7", "cnn7", "leaky_relu", 0.0390, 0.178957, 0.34405, 61.1, 3_004_917),
    ReportAModel("CNN2", "cnn2", "relu", 0.0498, 0.0867, 0.0415, 58.7, 10_393_946),
)
# The published CIFAR-100 results (trained on CIFAR-100 only) report A compares with (section VI).
PUBLISHED = (
    ("EXACT: How to Train Your Accuracy", 82.68),
    ("Differentiable Spike: Rethinking Gradient-Descent for Training Spiking Neural Networks", 74.24),
    ("Beta-Rank: A Robust Convolutional Filter Pruning Method For Imbalanced Medical Image Analysis", 74.01),
    ("Deep Residual Networks with Exponential Linear Unit", 73.5),
)

REPORT_B_RESDW_PARAMETERS = 98_068
REPORT_B_TEST_PCT, REPORT_B_TEST_SPREAD = 56.9, 4.6
REPORT_B_TRAIN_PCT, REPORT_B_TRAIN_SPREAD = 68.1, 4.3
REPORT_B_FINAL_TRAIN_LOSS = 1.099
REPORT_B_STEPS = 10_000
# Report B only says "within the parameter limit"; 100,000 is the round number above its 98,068,
# drawn as an assumption, never as a number report B states.
ASSUMED_PARAMETER_LIMIT = 100_000
REPORT_B_FID = 46.85
REPORT_B_FID_STEP = 46_000
# Report B says it trained "for 46,000 optimisation steps" and, in the same paragraph, that it chose
# the 46,000-step snapshot over "the samples taken at 50,000 steps": training went on to 50,000. We
# read it so, train to 50,000 and score both snapshots.
REPORT_B_GAN_STEPS = 50_000
REPORT_B_FID_IMAGES = 10_000
REPORT_B_GAN_PARAMETERS = {"generator": 635_812, "discriminator": 344_264, "total": 980_076}

REPORT_B_SOTA_PCT, REPORT_B_SOTA_PARAMETERS = 71.35, 520_000

ANCHORS: tuple[Anchor, ...] = (
    Anchor("a.split.train", "training part of the split", 40_000, "images", report_a("II.A")),
    Anchor("a.split.val", "validation part of the split (1/5)", 10_000, "images", report_a("II.A")),
    Anchor("a.augment.gain", "gain from augmentation ('a 10 percent improvement', read as points: 50% without)",
           10, "points", report_a("II.B")),
    Anchor("a.augment.none", "test accuracy of all three models without augmentation", 50, "%", report_a("II.B")),
    Anchor("a.search.architectures", "architectures searched", 8, "", report_a("III")),
    Anchor("a.search.trials", "trials", 60, "trials", report_a("III")),
    Anchor("a.search.concurrent", "trials at once", 16, "trials", report_a("III")),
    Anchor("a.search.max_epochs", "epochs of a trial, at most", 30, "epochs", report_a("III")),
    Anchor("a.search.keep", "ASHA keeps the top", 50, "%", report_a("III")),
    Anchor("a.search.optimizers", "optimizer of the selected models ('it only picked models with SGD')", "SGD", "",
           report_a("IV.2")),
    Anchor("a.final.epochs", "epochs of the final models", 100, "epochs", report_a("V")),
    Anchor("a.final.images", "training images of the final models", 50_000, "images", report_a("IV, V")),
    *(Anchor(f"a.{m.model}.test", f"{m.label} test accuracy", m.test_top1_pct, "%", report_a("V.A"))
      for m in REPORT_A_MODELS),
    *(Anchor(f"a.{m.model}.params", f"{m.label} parameters", m.parameters, "parameters", report_a("VII"))
      for m in REPORT_A_MODELS),
    *(Anchor(f"a.published.{i}", f"published: {title}", pct, "%", report_a("VI"))
      for i, (title, pct) in enumerate(PUBLISHED, 1)),
    Anchor("a.published.mean", "mean of the published results (the report says 'all three'; it is the mean of "
           "the four)", 76.11, "%", report_a("VI")),
    Anchor("a.compare.gap", "the published results' lead over its models ('about 16% better', read as points: "
           "76.11 minus the mean of its three, 59.97)", 16, "points", report_a("VI"), qualifier="about"),
    Anchor("a.compare.rank60", "leaderboard position of models with 60% accuracy", 180, "", report_a("VI"),
           not_measured="a position on the Papers with Code CIFAR-100 leaderboard when report A was written; "
                        "that ranking is outside this study (and has changed since)"),
    Anchor("a.compare.rank50", "leaderboard position of models with 50% accuracy", 192, "", report_a("VI"),
           not_measured="as the 180th position: a leaderboard this study does not have"),
    Anchor("a.effort", "time given to the work ('I only focus on training this model for 1-2 weeks')", "1-2",
           "weeks", report_a("VI"),
           not_measured="the author's time on the project, not a stated compute time; this study's compute time "
                        "per stage is in the environment section"),
    Anchor("b.resdw.params", "resdw parameters", REPORT_B_RESDW_PARAMETERS, "parameters", report_b("abstract, 2")),
    Anchor("b.resdw.steps", "resdw optimisation steps", REPORT_B_STEPS, "steps", report_b("2")),
    Anchor("b.resdw.test", "resdw test accuracy", REPORT_B_TEST_PCT, "%", report_b("2"), REPORT_B_TEST_SPREAD),
    Anchor("b.resdw.train", "resdw training accuracy", REPORT_B_TRAIN_PCT, "%", report_b("2"), REPORT_B_TRAIN_SPREAD),
    Anchor("b.resdw.loss", "resdw final training loss", REPORT_B_FINAL_TRAIN_LOSS, "loss", report_b("2")),
    Anchor("b.resdw.runtime", "resdw training time ('runtime of over 25 minutes on my machine')", 25, "minutes",
           report_b("3"), qualifier="over"),
    Anchor("b.resdw.dropout", "dropout before the final layer ('reliably decreased test accuracy')", "decreased",
           "", report_b("3"),
           not_measured="no stage trains resdw with dropout; `cifar train --model resdw --dropout 0.2 --optimizer "
                        "adam --steps 10000 --full-train --evaluate-test` beside stage recipe-b would test it"),
    Anchor("b.sota.test", "low-parameter state of the art it cites: test accuracy", REPORT_B_SOTA_PCT, "%",
           report_b("3")),
    Anchor("b.sota.params", "low-parameter state of the art it cites: parameters", REPORT_B_SOTA_PARAMETERS,
           "parameters", report_b("3")),
    Anchor("b.compare.ratio", "parameters of that state of the art over resdw's", 5, "times", report_b("3"),
           qualifier="more than"),
    Anchor("b.compare.gap", "accuracy of that state of the art above resdw's", 14, "points", report_b("3"),
           qualifier="approximately"),
    Anchor("b.fid", "DCGAN FID against the test set", REPORT_B_FID, "FID", report_b("abstract, 5")),
    Anchor("b.fid.images", "generated images scored", REPORT_B_FID_IMAGES, "images", report_b("abstract")),
    Anchor("b.gan.steps", "steps of the scored snapshot", REPORT_B_FID_STEP, "steps", report_b("5")),
    Anchor("b.gan.compared", "snapshot its choice was judged against (46,000 'more stable and less noisy than the "
           "samples taken at 50,000 steps')", REPORT_B_GAN_STEPS, "steps", report_b("5")),
    Anchor("b.gan.generator", "generator parameters", REPORT_B_GAN_PARAMETERS["generator"], "parameters",
           report_b("5")),
    Anchor("b.gan.discriminator", "discriminator parameters", REPORT_B_GAN_PARAMETERS["discriminator"],
           "parameters", report_b("5")),
    Anchor("b.gan.total", "DCGAN parameters in all", REPORT_B_GAN_PARAMETERS["total"], "parameters",
           report_b("abstract, 5")),
)
ANCHORS_BY_KEY = {anchor.key: anchor for anchor in ANCHORS}

# Parameter counts of this project's models (`cifar models`), so the report can set them beside the
# reports' without building a network; tests/test_protocols.py checks them against the registry.
OUR_PARAMETERS = {"cnn6": 2_494_022, "cnn7": 3_004_917, "cnn2": 10_393_946, "resdw": 98_077,
                  "dcgan_generator": 635_812, "dcgan_discriminator": 344_264}


# --- protocols -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """What a report or the tutorial did, beside a value of ours that differs from it or that it
    leaves implicit (the tutorial samples with each batch's statistics; PyTorch trains in float32)."""

    value: Any
    source: Source


@dataclass(frozen=True)
class Setting:
    """One value of a protocol. `key` names what it sets, as the code's default (checked by
    tests/test_protocols.py): a TrainConfig dotted key, a GanTrainConfig, TuneSettings or RetrainPlan
    field, a pipeline section's field, a `cifar fid` option, `seeds` (a recipe's) or `data` (what
    --data-dir holds); None for what is documented but not one setting. A value
    that differs between a recipe's models is written "a / b / c", in the recipe's order, and kept
    per model in `per_model`. A run is compared with `reference` where there is one, else `value`."""

    name: str
    value: Any
    source: Source
    key: str | None = None
    note: str = ""  # what a reader must know beside the source (e.g. what changes the value in a run)
    reference: Reference | None = None
    per_model: tuple[tuple[str, Any], ...] = ()  # (model, value) of a row that differs by model

    @property
    def text(self) -> str:
        return value_text(self.value)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k.strip() for k in (self.key or "").split(",") if k.strip())

    def expected(self, model: str | None = None) -> tuple[Any, Source] | None:
        """What a run of `model` is compared with, and whose value it is; None for a per-model row
        when the run is none of the protocol's models (a search's pick, retrained)."""
        if self.reference is not None:
            return self.reference.value, self.reference.source
        if self.per_model:
            found = dict(self.per_model)
            return (found[model], self.source) if model in found else None
        return self.value, self.source


def value_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ", ".join(value_text(v) for v in value)
    if isinstance(value, dict):
        return budget_text(value)
    return str(value)


def budget_text(budget: dict[str, int] | None) -> str:
    """{"epochs": 1} -> "1 epoch", {"steps": 10000} -> "10,000 steps"."""
    return ", ".join(f"{value:,} {key.removesuffix('s') if value == 1 else key}" for key, value in (budget or {}).items())


@dataclass(frozen=True)
class Protocol:
    key: str
    title: str
    settings: tuple[Setting, ...]


FP32_WHY = ("neither report mentions precision and PyTorch trains in float32 by default; these runs are "
            "compared with the reports' numbers, so bf16 autocast (faster on GPUs) stays an option "
            "(`--amp`, `recipe-*.amp`) instead of the default")
# Neither report mentions precision: a run is compared with PyTorch's float32, bf16 being ours.
FLOAT32 = Reference(False, pytorch("float32; neither report mentions precision"))

# What --data-dir held, by the files' md5s (cifar_core.data.identity's digest kinds).
DATA_TEXT = {"official": "the official CIFAR-100",
             "synthetic": "the SYNTHETIC stand-in (`cifar data synth`), not CIFAR-100",
             "files": "files that are not the official CIFAR-100 (by their md5s)"}


def data_text(digest: str | None) -> str:
    """What a run's data was, from its digest (`official:...`, `synthetic:...`, `files:...`)."""
    return DATA_TEXT.get((digest or "").split(":")[0], "not recorded")


def data_setting(source: Source) -> Setting:
    return Setting("data", DATA_TEXT["official"], source, "data",
                   note="the synthetic stand-in runs only where a command is told `--allow-synthetic` (or by the "
                        "smoke profile), and every number of it says SYNTHETIC")

# Report A's "padding=1", read literally, for these layouts; the others pad k // 2 (cifar_core/models/cnn.py).
PADDING_1_LAYOUTS = ("cnn5", "cnn6", "cnn7")

CLASSIFIERS = Protocol("classifiers", "Every classifier run (both reports: the search, the retrains, the recipes)", (
    Setting("input normalisation: per-channel mean (images in [0, 1])", (0.5071, 0.4865, 0.4409), ours(
        "neither report mentions normalisation; the CIFAR-100 training images' own statistics are the usual choice")),
    Setting("input normalisation: per-channel standard deviation", (0.2673, 0.2564, 0.2762), ours("as the mean")),
    Setting("a ragged last batch", "dropped: 390 steps an epoch at batch 128, so 100 epochs are 39,000 steps", ours(
        "50,000 = 390 x 128 + 80; BatchNorm dislikes a tiny last batch, and the 80 left out differ every epoch")),
    Setting("convolution padding", f"{', '.join(PADDING_1_LAYOUTS)}: 1 for every kernel above 1x1 (0 for 1x1); "
            "cnn1-cnn4, cnn8: k // 2", ours(
                "report A lists 'Stride=1, padding=1. (it often kept the same dimensions)' among the components of "
                "its 60 models (section III), without saying which convolutions; cnn5-cnn7 read it literally (the "
                "map shrinks for kernels above 3x3, grows for 2x2), and with it cnn6 and cnn7 have report A's "
                "parameter counts; the others pad k // 2 ('same' for odd kernels)")),
    Setting("LeakyReLU negative slope", 0.1, ours("report A: 'where α is small'; report B uses no LeakyReLU")),
))

REPORT_A_AUGMENT = (
    Setting("random horizontal flip", True, report_a("II.B"), "augment.hflip"),
    Setting("random crop: padding before a 32x32 window", 4, ours("report A says 'random crop with padding', "
            "not how much; 4 pixels is the usual CIFAR value (and report B's)"), "augment.crop_padding"),
    Setting("colour jitter: brightness", 0.2, ours("report A lists brightness, contrast, saturation and hue "
            "jitter without magnitudes; 0.2 / 0.2 / 0.2 / 0.05 are moderate torchvision ColorJitter values"),
            "augment.brightness"),
    Setting("colour jitter: contrast", 0.2, ours("as brightness"), "augment.contrast"),
    Setting("colour jitter: saturation", 0.2, ours("as brightness"), "augment.saturation"),
    Setting("colour jitter: hue", 0.05, ours("as brightness"), "augment.hue"),
    Setting("random rotation, degrees at most", 15.0, ours("report A lists random rotation without an angle"),
            "augment.rotation"),
    Setting("crop padding mode", "reflect", ours("keeps the border's colours (airbench's choice); report A "
            "does not say")),
)


def _per_model(values: Iterable[Any]) -> str:
    return " / ".join(value_text(v) for v in values)


REPORT_A_DROPOUT = {"cnn6": 0.2, "cnn7": 0.2, "cnn2": 0.3}  # ours: see the protocol's dropout row
_LABELS = " / ".join(m.label for m in REPORT_A_MODELS)

def _per_model_setting(name: str, field_name: str, source: Source, key: str, values: dict | None = None) -> Setting:
    """A row whose value differs between report A's three models: "a / b / c", and each model's."""
    found = values or {m.model: getattr(m, field_name) for m in REPORT_A_MODELS}
    per_model = tuple((m.model, found[m.model]) for m in REPORT_A_MODELS)
    return Setting(name, _per_model(v for _, v in per_model), source, key, per_model=per_model)


REPORT_A_FINAL = Protocol("report-a", "Report A's three final models (sections IV, V): the `report-a` recipe", (
    _per_model_setting(f"models (report A's {_LABELS})", "model", report_a("IV"), "model.name"),
    Setting("layers of each model", "cnn6 / cnn7 / cnn2 in the registry", ours(
        "report A gives only the parameter counts (VII) and a figure of the layers that is not in the text; "
        "our layouts match the counts exactly")),
    _per_model_setting(f"activation of {_LABELS}", "activation", report_a("IV.1"), "model.activation"),
    Setting("optimizer", "sgd", report_a("IV.2"), "optim.name"),
    _per_model_setting(f"learning rate of {_LABELS}", "lr", report_a("IV.3"), "optim.lr"),
    _per_model_setting(f"momentum of {_LABELS}", "momentum", report_a("IV.3"), "optim.momentum"),
    _per_model_setting(f"dampening of {_LABELS}", "dampening", report_a("IV.3"), "optim.dampening"),
    Setting("Nesterov momentum", False, pytorch("torch.optim.SGD"), "optim.nesterov"),
    Setting("weight decay", 0.0, pytorch("report A names none"), "optim.weight_decay"),
    Setting("learning-rate schedule", "none", ours("report A names none: a constant rate"), "optim.schedule"),
    Setting("loss", "cross-entropy", report_a("III")),
    Setting("epochs", 100, report_a("V"), "run.epochs"),
    Setting("training images: all 50,000 (no validation split)", True, report_a("IV, V"), "run.full_train"),
    data_setting(report_a("I, II.A")),
    Setting("batch size", 128, ours("report A gives none; the search uses the same"), "run.batch_size"),
    _per_model_setting(f"dropout of {_LABELS}", "", ours(
        "report A gives a range (0.1-0.3, III), not the final models' rates; values inside it"), "model.dropout",
        REPORT_A_DROPOUT),
    *REPORT_A_AUGMENT,
    Setting("bf16 autocast (else float32)", False, ours(FP32_WHY), "run.amp", reference=FLOAT32),
    Setting("seeds", (0,), ours("report A reports one run per model"), "seeds"),
    Setting("test set", "all 10,000 test images", report_a("II.A, V.A")),
    Setting("weights scored on it", "those after the last epoch", ours(
        "report A does not say which epoch it scored; with every training image used for training, no "
        "validation score is left to choose another")),
))

REPORT_B_CLASSIFIER = Protocol("report-b", "Report B's classifier (part 1): the `report-b` recipe", (
    Setting("model", "resdw", report_b("1"), "model.name"),
    Setting("blocks", "10 residual blocks of two depthwise-separable convolutions; 8 at 42 channels, "
            "2 at 128; global average pooling; one linear layer", report_b("1")),
    Setting("stem (before the first block)", "one depthwise-separable convolution 3->42, BN, ReLU", ours(
        "it brings the image's 3 channels to the blocks' 42 before the first block (a first block could widen "
        "them itself, as block 9 widens 42 to 128); with the choices below the count is near report B's 98,068 "
        "(ours: 98,077)"),
            reference=Reference("none: 'the input layer followed by ten convolutional layers', each a residual "
                                "block", report_b("1"))),
    Setting("downsampling, 42->128 shortcut", "stride 2 at blocks 5 and 9; a 1x1 convolution on block 9's shortcut",
            ours("report B does not describe them; chosen near its 98,068 parameters (cifar_core/models/resdw.py)")),
    Setting("dropout before the classifier", 0.0, report_b("3"), "model.dropout"),
    Setting("optimizer", "adam", report_b("1"), "optim.name"),
    Setting("learning rate", 0.001, pytorch("torch.optim.Adam; report B gives none"), "optim.lr"),
    Setting("Adam beta1", 0.9, pytorch("torch.optim.Adam"), "optim.beta1"),
    Setting("Adam beta2", 0.999, pytorch("torch.optim.Adam"), "optim.beta2"),
    Setting("weight decay", 0.0, pytorch("torch.optim.Adam; report B names none"), "optim.weight_decay"),
    Setting("learning-rate schedule", "none", report_b("3"), "optim.schedule"),
    Setting("loss", "cross-entropy", report_b("1")),
    Setting("random horizontal flip", True, report_b("1"), "augment.hflip"),
    Setting("random crop: up to 4 pixels each way", 4, report_b("1"), "augment.crop_padding"),
    Setting("crop padding mode", "reflect", ours("report B does not say; as for report A")),
    Setting("colour jitter and rotation (magnitude: none)", 0.0, report_b("1"),
            "augment.brightness, augment.contrast, augment.saturation, augment.hue, augment.rotation"),
    Setting("optimisation steps", REPORT_B_STEPS, report_b("2"), "run.steps"),
    Setting("training images: all 50,000 (no validation split)", True, ours(
        "report B applied its flips and crops 'to each image in the training set' and mentions no validation "
        "split"), "run.full_train"),
    data_setting(report_b("1")),
    Setting("batch size", 128, ours("report B gives none"), "run.batch_size"),
    Setting("test set scored every N steps (the curve of figure 2)", 500, ours(
        "report B plots test accuracy over the steps without saying how often it scored"), "run.eval_test_every"),
    Setting("seeds (mean ± standard deviation over them)", (0, 1, 2), ours(
        "report B writes 56.9 ± 4.6 without saying over what; the spread over seeds is what we can measure"), "seeds"),
    Setting("training accuracy", "the running accuracy of the last epoch's batches (augmented)", ours(
        "report B does not say how it measured 68.1")),
    Setting("bf16 autocast (else float32)", False, ours(FP32_WHY), "run.amp", reference=FLOAT32),
))

REPORT_A_SEARCH = Protocol("report-a-search", "Report A's search (sections II, III): `cifar tune`, space report-a", (
    Setting("split: training / validation images", "40,000 / 10,000", report_a("II.A")),
    Setting("validation fraction", 0.2, report_a("II.A"), "run.val_fraction"),
    data_setting(report_a("I, II.A")),
    Setting("how the split is drawn", "a seeded permutation (split seed 0)", ours(
        "report A used torch.utils.data.random_split with an unstated seed")),
    Setting("architectures", 8, report_a("III")),
    Setting("search space (cifar_core/tune/spaces/)", "report-a", report_a("III"), "space",
            note="report A's architectures, optimizers and ranges, as listed in these rows"),
    Setting("their layers", "cnn1 ... cnn8 in the registry", ours(
        "report A gives no layers, only the components they were built from (III: kernels 1x1 to 7x7, max and "
        "average pooling, BatchNorm, dropout, fully connected layers); ours use those, and cnn6, cnn7 and cnn2 "
        "match its three models' parameter counts (VII)")),
    Setting("activations", "ReLU, LeakyReLU", report_a("III")),
    Setting("activation of a trial", "drawn: relu or leaky_relu, one for the whole network", ours(
        "report A lists both among its components (III), not how a model got one")),
    Setting("dropout rates", "0.1-0.3", report_a("III")),
    Setting("dropout of a trial", "drawn uniformly in 0.1-0.3, one rate for the whole network", ours(
        "report A gives the range only")),
    Setting("SGD", "lr log-uniform 1e-5-0.1, momentum 0-0.4, dampening 0-0.4", report_a("III")),
    Setting("Adam", "lr 1e-4-0.1, beta1 0.8-0.99999, beta2 0.8-0.99999999", report_a("III")),
    Setting("RMSProp", "lr log-uniform 1e-4-0.1, alpha 0.8-1, momentum 0-0.5", report_a("III")),
    Setting("AdaGrad", "lr log-uniform 1e-3-0.1, initial accumulator 0-0.3, lr decay 0-0.1", report_a("III")),
    Setting("ranges written as intervals ('∈ [a, b]')", "drawn uniformly (Adam's learning rate too)", ours(
        "report A writes some ranges as 'lr ~ log U(...)' and the others as intervals, without a distribution")),
    Setting("learning-rate schedule", "none", ours("report A names none: a constant rate"), "optim.schedule"),
    Setting("trials", 60, report_a("III"), "num_samples"),
    Setting("trials at once, at most", 16, report_a("III"), "max_concurrent",
            note="the report shows how many ran at once, from the trials' timings"),
    Setting("search algorithm", "random search (Tune's BasicVariantGenerator), seeded", ours(
        "report A names only the scheduler; Tune's default searcher, seeded so that a search can be repeated")),
    Setting("seed of the drawn configs and of every trial's training", 0, ours(
        "one seed for all trials, so that trials differ by their config only; report A gives none"), "seed"),
    Setting("scheduler", "ASHA (asynchronous hyperband)", report_a("III")),
    Setting("ASHA keeps the top 1/N at each rung", 2, report_a("III"), "reduction_factor",
            note="the report shows the fraction ASHA kept at each rung"),
    Setting("epochs of a trial, at most", 30, report_a("III"), "max_epochs"),
    Setting("ASHA grace period, epochs", 1, ours("report A does not say; the first rung after one epoch"),
            "grace_period"),
    Setting("selection metric", "validation accuracy", report_a("IV")),
    Setting("models retrained", 3, report_a("IV"), "top_k"),
    Setting("which 3: the best trial of each of the 3 best architectures", "architectures", ours(
        "report A: 'the top 3 models were selected based on their validation accuracy'; its three are three "
        "architectures (CNN6, CNN7, CNN2), read as the best trial of each (`--select trials`: the 3 best "
        "trials)"), "select"),
    Setting("batch size", 128, ours("report A gives none"), "batch_size"),
    Setting("augmentation", "flip, padded crop, colour jitter, rotation: the `report-a` preset", report_a("II.B")),
    Setting("augmentation magnitudes", "as the final models'", ours("report A gives none (see below)")),
    Setting("bf16 autocast on GPUs", True, ours(
        "the search only ranks 60 configs and bf16 halves its GPU time; a retrain keeps its trial's config, "
        "so it does too (the report shows each run's precision); the numbers set beside report A's come from "
        "the float32 `report-a` recipe"), "run.amp", reference=FLOAT32),
))

REPORT_B_GAN_STEPS_WHY = (
    "report B says both 'It was trained for 46,000 optimisation steps' and that it chose 'a snapshot of the "
    "model taken at 46,000 steps as the images were more stable and less noisy than the samples taken at 50,000 "
    "steps' (section 5): samples at 50,000 steps mean training went on to 50,000. We read it so and train to "
    "50,000, which lets stage fid-b score both snapshots")
COLLAPSE_WHY = (
    "report B: collapsed runs 'would often not recover and the entire process would have to be restarted' "
    "(section 6). `restart` does that (from step 0, a new seed, the learning rate unchanged); `off` detects and "
    "logs only; `rollback` goes back to the last healthy snapshot with a new seed and the learning rate times "
    "0.5, which keeps the work before the collapse but departs from report B's protocol: every FID of such a "
    "run lists its departures")

DCGAN = Protocol("report-b-dcgan", "Report B's DCGAN (part 2, sections 4-6): `cifar gan train`", (
    Setting("generator", "4 transposed convolutions (BN, ReLU) up to a 32x32 image", report_b("4")),
    Setting("generator output layer", "the 4th convolution without BN, then tanh (images in [-1, 1])", TUTORIAL,
            note="report B lists BN and ReLU for each generator layer; the tutorial's last layer has neither"),
    Setting("discriminator", "2D convolutions (BN, LeakyReLU) down to one score, then a sigmoid", report_b("4")),
    Setting("discriminator layout", "three stride-2 4x4 convolutions (no BN on the first, BN on the others, "
            "LeakyReLU 0.2), then a stride-1 4x4 convolution to one score", TUTORIAL,
            note="the tutorial's netD (64x64 images) has four stride-2 convolutions before that head; one fewer "
                 "fits 32x32 images (ours, as report B 'modified [it] for CIFAR100'); report B says only 'similar "
                 "to that of the generator, but in reverse'; at width 46 it has report B's 344,264 parameters"),
    Setting("generator / discriminator width", 46, ours(
        "chosen so the counts are report B's 635,812 and 344,264 (section 5)"), "ngf, ndf",
            reference=Reference(46, report_b("5"))),
    Setting("noise dimension", 100, TUTORIAL, "nz"),
    Setting("loss", "binary cross-entropy", report_b("4")),
    Setting("optimizer", "Adam, both networks", TUTORIAL),
    Setting("learning rate", 2e-4, TUTORIAL, "lr",
            note="each rollback multiplies it by 0.5: such a run ends at a lower rate (`final_lr` in its summary)"),
    Setting("Adam beta1", 0.5, TUTORIAL, "beta1"),
    Setting("Adam beta2", 0.999, TUTORIAL, "beta2"),
    Setting("batch size", 128, TUTORIAL, "batch_size"),
    Setting("weight initialisation", "N(0, 0.02); BN scale N(1, 0.02)", TUTORIAL),
    Setting("LeakyReLU slope", 0.2, TUTORIAL),
    Setting("real images scaled to", "[-1, 1]", TUTORIAL),
    Setting("random flips of real images", False, ours(
        "neither report B nor the tutorial flips them (an option, `hflip`)"), "hflip",
            reference=Reference(False, TUTORIAL)),
    Setting("steps", REPORT_B_GAN_STEPS, ours(REPORT_B_GAN_STEPS_WHY), "steps",
            reference=Reference(REPORT_B_GAN_STEPS, report_b("5"))),
    Setting("snapshots kept every", 2000, ours(
        "report B compared its 46,000- and 50,000-step snapshots; every 2,000 steps keeps both, and the 25 "
        "snapshots our selection (stage fid) ranks"), "checkpoint_every"),
    Setting("training images", "the 50,000 of the training split", ours("report B does not say")),
    data_setting(report_b("4")),
    Setting("mode collapse (`--collapse`)", "rollback", ours(COLLAPSE_WHY), "collapse.mode"),
    Setting("collapse judged after a warm-up of, steps", 1000, ours(
        "early losses swing and BatchNorm statistics settle"), "collapse.warmup_steps"),
    Setting("a symptom is a collapse once it persists for, steps", 1000, ours(
        "one bad logging interval is not a collapse"), "collapse.window_steps"),
    Setting("'discriminator wins': D loss below", 0.05, ours(
        "with G loss above 5 (D(G(z)) < e^-5, about 0.7%), G gets no gradient and rarely recovers alone"),
            "collapse.d_loss_floor"),
    Setting("... while G loss above", 5.0, ours("as the D loss floor"), "collapse.g_loss_ceiling"),
    Setting("'diversity collapse': the fixed-noise samples' spread below this fraction of its healthy level", 0.2,
            ours("near-copies of each other; healthy level: the lower of real images' spread and the best this "
                 "run reached"), "collapse.diversity_fraction"),
    Setting("recoveries per run, at most", 3, ours(
        "a run that keeps collapsing is reported, not retried for ever; later collapses are logged only"),
            "collapse.max_recoveries"),
    Setting("learning rate after each rollback, times", 0.5, ours(
        "a lower rate steadies the game that collapsed; each event records the rate after it"),
            "collapse.lr_factor"),
    Setting("bf16 autocast on GPUs", False, ours(
        "the tutorial trains in float32 (report B says nothing of precision), and this small DCGAN gains little "
        "from bf16"), "amp", reference=Reference(False, TUTORIAL)),
))

STANDARD_WEIGHTS = "pytorch-fid's released weights"


def weights_text(standard: bool, sha256: str) -> str:
    """The Inception weights a FID used, as its protocol row compares them."""
    return STANDARD_WEIGHTS if standard else f"other weights (sha256 {sha256[:12]}): not comparable with published FIDs"


FID = Protocol("report-b-fid", "FID (report B, abstract and section 5): `cifar fid`", (
    Setting("generated images", REPORT_B_FID_IMAGES, report_b("abstract"), "n"),
    Setting("real images: the split scored against", "test", report_b("abstract, 5"), "split",
            note="the CIFAR-100 test set, 10,000 images"),
    data_setting(report_b("abstract, 5")),
    Setting("report B's protocol (`cifar fid --snapshot RUN`, stage fid-b)", "the step-46,000 snapshot, chosen by eye",
            report_b("5")),
    Setting("snapshot step of report B's protocol", REPORT_B_FID_STEP, report_b("5"), "step"),
    Setting("snapshots scored beside it, the same way", (REPORT_B_GAN_STEPS,), report_b("5"), "compare_steps",
            note="report B compared the 50,000-step samples by eye; stage fid-b scores them"),
    Setting("our protocol (`cifar fid --select-best RUN`, stage fid)", "every snapshot scored against the TRAINING split; only "
            "the chosen one is scored on the test set, with other noise", ours(
                "choosing the best snapshot on the test set and reporting that score would flatter it; "
                "report B chose without scores")),
    Setting("Inception network", "pytorch-fid's InceptionV3, pool3, 2048 features", ours(
        "report B does not say which FID code; pytorch-fid's is the reference implementation")),
    Setting("Inception weights", STANDARD_WEIGHTS, ours(
        "published FIDs use these; any other file (judged by its sha256) gives FIDs that are not comparable "
        "with them"), "weights"),
    Setting("generator BatchNorm when sampling (both protocols)", "running", ours(
        "running statistics (eval mode): images do not depend on the batch they are drawn in; the tutorial "
        "samples in train mode, each batch normalised by its own statistics (`--batch-norm batch`)"),
            "batch_norm", reference=Reference("batch", TUTORIAL)),
    Setting("noise seed", 0, ours("any fixed seed; the test score of a selection uses another"), "seed"),
))

PROTOCOLS: tuple[Protocol, ...] = (CLASSIFIERS, REPORT_A_SEARCH, REPORT_A_FINAL, REPORT_B_CLASSIFIER, DCGAN, FID)
PROTOCOLS_BY_KEY = {protocol.key: protocol for protocol in PROTOCOLS}


# --- departures: how a run differs from the protocol it is set beside ------------------------------
@dataclass(frozen=True)
class Departure:
    setting: Setting
    value: Any  # the run's
    expected: Any
    source: Source  # whose the expected value is

    @property
    def text(self) -> str:
        """"batch size: 64 (PyTorch DCGAN tutorial: 128)"."""
        return f"{self.setting.name}: {value_text(self.value)} ({self.source.whose}: {value_text(self.expected)})"


def departures(actual: Mapping[str, Any], *protocols: Protocol, model: str | None = None) -> list[Departure]:
    """Every row of `protocols` a run departs from: a keyed row whose key `actual` (the run's settings
    by key) holds with another value than the row expects (`Setting.expected`), and a row of ours that
    departs from the report by itself (resdw's stem). Each key is compared once, in its first row."""
    found: list[Departure] = []
    seen: set[str] = set()
    for setting in (s for protocol in protocols for s in protocol.settings):
        expected = setting.expected(model)
        if not setting.key:
            if departs_by_itself(setting):
                found.append(Departure(setting, setting.value, *expected))
            continue
        keys = [k for k in setting.keys if k in actual and k not in seen]
        if expected is None or not keys:
            continue
        seen.update(keys)
        differing = [k for k in keys if not _same(actual[k], expected[0])]
        if differing:
            shared = all(_same(actual[k], actual[keys[0]]) for k in keys)
            value = actual[keys[0]] if shared else ", ".join(f"{k} {value_text(actual[k])}" for k in differing)
            found.append(Departure(setting, value, *expected))
    return found


def protocol_record(actual: Mapping[str, Any], *protocols: Protocol, model: str | None = None) -> dict[str, Any]:
    """What a summary keeps of the protocol it is set beside: the run's value of each key compared
    (`protocol_settings`) and each departure, one line each (`protocol_departures`, [] for none)."""
    keys = {k for protocol in protocols for s in protocol.settings for k in s.keys}
    return {"protocol_settings": {k: v for k, v in actual.items() if k in keys},
            "protocol_departures": [d.text for d in departures(actual, *protocols, model=model)]}


def budget_settings(budget: dict[str, int]) -> dict[str, Any]:
    """A run's budget under both keys: a protocol that trains for epochs sees "4 steps" where a run
    trained for steps, and one that trains for steps sees "2 epochs"."""
    return {"run.epochs": budget.get("epochs", budget), "run.steps": budget.get("steps", budget)}


def departure_name(line: str) -> str:
    """What a departure line is about, for a short mention: its setting's name, or what precedes its
    first ": " (a recovery: "collapse at step 12,000")."""
    names = [s.name for protocol in PROTOCOLS for s in protocol.settings if line.startswith(f"{s.name}: ")]
    return max(names, key=len) if names else line.split(": ", 1)[0]


def settings_of(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A config's values by dotted key ({"collapse": {"mode": ...}} -> {"collapse.mode": ...})."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        if isinstance(value, Mapping):
            flat.update(settings_of(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def merged_settings(each: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Several runs' settings as one: the value they share, else theirs in order ("a / b / c", as a
    protocol writes a value that differs by model)."""
    runs = list(each)
    merged = {}
    for key in dict.fromkeys(k for run in runs for k in run):
        values = [run.get(key) for run in runs]
        merged[key] = values[0] if all(_same(v, values[0]) for v in values) else " / ".join(map(value_text, values))
    return merged


def _same(a: Any, b: Any) -> bool:
    """Equal as settings: a list read back from JSON is the tuple it was written from."""
    return (tuple(a) if isinstance(a, list) else a) == (tuple(b) if isinstance(b, list) else b)



# --- recipes: a protocol's runs, without a search ------------------------------------------------
@dataclass(frozen=True)
class RecipeModel:
    label: str  # as the report names it
    overrides: dict[str, Any]  # TrainConfig dotted keys


@dataclass(frozen=True)
class Recipe:
    name: str
    protocol: Protocol
    shared: dict[str, Any]  # TrainConfig dotted keys every model of the recipe uses
    models: tuple[RecipeModel, ...]
    seeds: tuple[int, ...]

    @property
    def budget(self) -> dict[str, int]:
        """{"steps": S} or {"epochs": E}: what each run of the recipe trains for."""
        return {"steps": self.shared["run.steps"]} if self.shared.get("run.steps") else {"epochs": self.shared["run.epochs"]}

    def model(self, label_or_name: str) -> RecipeModel:
        for m in self.models:
            if label_or_name in (m.label, m.overrides["model.name"]):
                return m
        known = ", ".join(m.overrides["model.name"] for m in self.models)
        from cifar_core.errors import ConfigError

        raise ConfigError(f"recipe {self.name} has no model {label_or_name!r} (known: {known})")


def recipe_from(name: str, protocol: Protocol, labels: Mapping[str, str] | None = None) -> Recipe:
    """A recipe as its protocol's rows state it: every row keyed by a training setting (the rows that
    differ by model, per model), and the row of its seeds. The protocol is the one place its values
    live; `labels` names the models as the report does (report A's CNN6)."""
    from cifar_core.config import TrainConfig
    from cifar_core.fields import leaves

    train_keys = {leaf.key for leaf in leaves(TrainConfig)}
    rows = [(key, s) for s in protocol.settings for key in s.keys if key in train_keys]
    shared = {key: s.value for key, s in rows if not s.per_model and key != "model.name"}
    names = next(s for key, s in rows if key == "model.name")
    models = [m for m, _ in names.per_model] or [names.value]
    per_model = [(key, dict(s.per_model)) for key, s in rows if s.per_model or key == "model.name"]
    seeds = next(s for s in protocol.settings if "seeds" in s.keys).value
    return Recipe(name, protocol, shared, tuple(
        RecipeModel((labels or {}).get(m, m), {key: values.get(m, m) if key == "model.name" else values[m]
                                                 for key, values in per_model}) for m in models), tuple(seeds))


REPORT_A_RECIPE = recipe_from("report-a", REPORT_A_FINAL, {m.model: m.label for m in REPORT_A_MODELS})
REPORT_B_RECIPE = recipe_from("report-b", REPORT_B_CLASSIFIER)

RECIPES = {recipe.name: recipe for recipe in (REPORT_A_RECIPE, REPORT_B_RECIPE)}


# --- small statistics the report and the recipes share -------------------------------------------
def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the numbers given (None: not enough of them)."""
    numbers = [v for v in values if v is not None]
    if not numbers:
        return None, None
    return statistics.fmean(numbers), statistics.stdev(numbers) if len(numbers) > 1 else None


# --- docs/provenance.md --------------------------------------------------------------------------
def provenance_markdown() -> str:
    """docs/provenance.md: one table per protocol, then every published number."""
    lines = [
        "# Provenance: where every protocol value comes from",
        "",
        "<!-- Rendered from cifar_core/protocols.py by `python -m cifar_core.protocols > docs/provenance.md`;",
        "     tests/test_protocols.py fails when the two differ. Edit the module, not this file. -->",
        "",
        "Every value the study's protocols use, with its source: **report A** (Lopez, \"CIFAR-100\", by "
        "section), **report B** (Kenny, \"Efficient CIFAR-100 modelling\", by section), the **PyTorch DCGAN "
        "tutorial** (report B's reference [3]: \"the code used for my generative model was taken from [3]\"), "
        "a **PyTorch default** the reports leave implicit, or **ours**: this project's choice, with the "
        "reason. A value the reports do not give is never credited to them. `Key` is the setting it "
        "fixes: a training-config key (`cifar train`, the recipes), a `GanTrainConfig` or `TuneSettings` "
        "field, a `cifar fid` option, a recipe's `seeds`, or `data` (what `--data-dir` holds, by its md5s).",
        "",
        "Every GAN run, FID score, recipe and retrain records how it departs from these tables "
        "(`protocol_departures` in its summary, computed by `cifar_core.protocols.departures`): each keyed "
        "setting it ran with another value than the report's, the tutorial's, PyTorch's or, where the reports "
        "give none, ours; and the values of ours that DEPART from what a report or the tutorial did by "
        "themselves (written so below). The report names them beside each number.",
        "",
    ]
    for protocol in PROTOCOLS:
        lines += [f"## {protocol.title}", "", "| Setting | Value | Source | Key |", "|---|---|---|---|"]
        for s in protocol.settings:
            source = s.source.label if s.source.kind != "ours" else f"ours: {s.source.where}"
            if s.source.kind in ("tutorial", "PyTorch") and s.source.where:
                source += f" ({s.source.where})"
            if s.note:
                source += f"; note: {s.note}"
            if wording := departure_wording(s):
                source += f"; {wording}"
            lines.append(f"| {_md(s.name)} | {_md(s.text)} | {_md(source)} | {f'`{s.key}`' if s.key else ''} |")
        lines.append("")
    lines += ["## Published numbers (shown in the report beside ours)", "",
              "| Number | Value | Source | Not measured here, because |", "|---|---:|---|---|"]
    lines += [f"| {_md(a.what)} | {_md(a.text)} | {a.source.label} | {_md(a.not_measured)} |" for a in ANCHORS]
    return "\n".join(lines) + "\n"


def departs_by_itself(setting: Setting) -> bool:
    """A value of ours that differs from what the report (or the tutorial) did: every run departs."""
    return setting.reference is not None and not _same(setting.value, setting.reference.value)


def departure_wording(setting: Setting) -> str:
    """How a value of ours that departs by itself says so ("" for one that does not)."""
    if not departs_by_itself(setting):
        return ""
    return f"DEPARTS from {setting.reference.source.label}: {value_text(setting.reference.value)}"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


if __name__ == "__main__":
    print(provenance_markdown(), end="")

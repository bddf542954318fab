"""The two reports this study reproduces: every number they publish (`ANCHORS`) and every value of
the protocols the study runs (`PROTOCOLS`, the recipes among them), each with its source.

A value neither report gives is never credited to one (sources: report A, report B, the PyTorch
DCGAN tutorial report B took its code from, a PyTorch default, ours with the reason). No torch:
`cifar report` reads it. docs/provenance.md is rendered from here (tests/test_protocols.py).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
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
        unit = {"%": "%", "points": " points", "minutes": " minutes", "weeks": " weeks", "times": " times"}.get(
            self.unit, "")
        return " ".join(part for part in (self.qualifier, f"{value}{spread}{unit}") if part)


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
class Setting:
    """One value of a protocol. `key` names what it sets, as the code's default (checked by
    tests/test_protocols.py): a TrainConfig dotted key, a GanTrainConfig, TuneSettings or RetrainPlan
    field, a pipeline section's field or a `cifar fid` option; None for what is documented but not
    one setting. A value that differs between a recipe's models is written "a / b / c", in the
    recipe's order."""

    name: str
    value: Any
    source: Source
    key: str | None = None
    note: str = ""  # what a reader must know beside the source (e.g. what changes the value in a run)

    @property
    def text(self) -> str:
        return value_text(self.value)


def value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return ", ".join(value_text(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class Protocol:
    key: str
    title: str
    settings: tuple[Setting, ...]


FP32_WHY = ("neither report mentions precision and PyTorch trains in float32 by default; these runs are "
            "compared with the reports' numbers, so bf16 autocast (faster on GPUs) stays an option "
            "(`--amp`, `recipe-*.amp`) instead of the default")

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

REPORT_A_FINAL = Protocol("report-a", "Report A's three final models (sections IV, V): the `report-a` recipe", (
    Setting(f"models (report A's {_LABELS})", _per_model(m.model for m in REPORT_A_MODELS), report_a("IV"),
            "model.name"),
    Setting("layers of each model", "cnn6 / cnn7 / cnn2 in the registry", ours(
        "report A gives only the parameter counts (VII) and a figure of the layers that is not in the text; "
        "our layouts match the counts exactly")),
    Setting(f"activation of {_LABELS}", _per_model(m.activation for m in REPORT_A_MODELS), report_a("IV.1"),
            "model.activation"),
    Setting("optimizer", "sgd", report_a("IV.2"), "optim.name"),
    Setting(f"learning rate of {_LABELS}", _per_model(m.lr for m in REPORT_A_MODELS), report_a("IV.3"), "optim.lr"),
    Setting(f"momentum of {_LABELS}", _per_model(m.momentum for m in REPORT_A_MODELS), report_a("IV.3"),
            "optim.momentum"),
    Setting(f"dampening of {_LABELS}", _per_model(m.dampening for m in REPORT_A_MODELS), report_a("IV.3"),
            "optim.dampening"),
    Setting("Nesterov momentum", False, pytorch("torch.optim.SGD"), "optim.nesterov"),
    Setting("weight decay", 0.0, pytorch("report A names none"), "optim.weight_decay"),
    Setting("learning-rate schedule", "none", ours("report A names none: a constant rate"), "optim.schedule"),
    Setting("loss", "cross-entropy", report_a("III")),
    Setting("epochs", 100, report_a("V"), "run.epochs"),
    Setting("training images: all 50,000 (no validation split)", True, report_a("IV, V"), "run.full_train"),
    Setting("batch size", 128, ours("report A gives none; the search uses the same"), "run.batch_size"),
    Setting(f"dropout of {_LABELS}", _per_model(REPORT_A_DROPOUT[m.model] for m in REPORT_A_MODELS), ours(
        "report A gives a range (0.1-0.3, III), not the final models' rates; values inside it"), "model.dropout"),
    *REPORT_A_AUGMENT,
    Setting("bf16 autocast (else float32)", False, ours(FP32_WHY), "run.amp"),
    Setting("seeds", "0", ours("report A reports one run per model")),
    Setting("test set", "all 10,000 test images", report_a("II.A, V.A")),
    Setting("weights scored on it", "those after the last epoch", ours(
        "report A does not say which epoch it scored; with every training image used for training, no "
        "validation score is left to choose another")),
))

REPORT_B_CLASSIFIER = Protocol("report-b", "Report B's classifier (part 1): the `report-b` recipe", (
    Setting("model", "resdw", report_b("1"), "model.name"),
    Setting("blocks", "10 residual blocks of two depthwise-separable convolutions; 8 at 42 channels, "
            "2 at 128; global average pooling; one linear layer", report_b("1")),
    Setting("stem, downsampling, 42->128 shortcut", "see resdw.py", ours(
        "report B does not describe them; chosen near its 98,068 parameters (ours: 98,077)")),
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
    Setting("batch size", 128, ours("report B gives none"), "run.batch_size"),
    Setting("test set scored every N steps (the curve of figure 2)", 500, ours(
        "report B plots test accuracy over the steps without saying how often it scored"), "run.eval_test_every"),
    Setting("seeds", "0, 1, 2 (mean ± standard deviation)", ours(
        "report B writes 56.9 ± 4.6 without saying over what; the spread over seeds is what we can measure")),
    Setting("training accuracy", "the running accuracy of the last epoch's batches (augmented)", ours(
        "report B does not say how it measured 68.1")),
    Setting("bf16 autocast (else float32)", False, ours(FP32_WHY), "run.amp"),
))

REPORT_A_SEARCH = Protocol("report-a-search", "Report A's search (sections II, III): `cifar tune`, space report-a", (
    Setting("split: training / validation images", "40,000 / 10,000", report_a("II.A")),
    Setting("validation fraction", 0.2, report_a("II.A"), "run.val_fraction"),
    Setting("how the split is drawn", "a seeded permutation (split seed 0)", ours(
        "report A used torch.utils.data.random_split with an unstated seed")),
    Setting("architectures", 8, report_a("III")),
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
        "the float32 `report-a` recipe"), "run.amp"),
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
    Setting("discriminator layout", "4 strided 4x4 convolutions, no BN on the first, LeakyReLU 0.2; the last "
            "one to a single score", TUTORIAL,
            note="the tutorial's netD with one stride-2 layer fewer for 32x32 images (ours); report B says only "
                 "'similar to that of the generator, but in reverse'; at width 46 it has report B's 344,264 "
                 "parameters"),
    Setting("generator / discriminator width", 46, ours(
        "chosen so the counts are report B's 635,812 and 344,264 (section 5)"), "ngf, ndf"),
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
        "neither report B nor the tutorial flips them (an option, `hflip`)"), "hflip"),
    Setting("steps", REPORT_B_GAN_STEPS, ours(REPORT_B_GAN_STEPS_WHY), "steps"),
    Setting("snapshots kept every", 2000, ours(
        "report B compared its 46,000- and 50,000-step snapshots; every 2,000 steps keeps both, and the 25 "
        "snapshots our selection (stage fid) ranks"), "checkpoint_every"),
    Setting("training images", "the 50,000 of the training split", ours("report B does not say")),
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
        "from bf16"), "amp"),
))

FID = Protocol("report-b-fid", "FID (report B, abstract and section 5): `cifar fid`", (
    Setting("generated images", REPORT_B_FID_IMAGES, report_b("abstract"), "n"),
    Setting("real images", "the CIFAR-100 test set (10,000)", report_b("abstract, 5")),
    Setting("report B's protocol (`cifar fid --snapshot RUN`, stage fid-b)", "the step-46,000 snapshot, chosen by eye",
            report_b("5")),
    Setting("snapshot step of report B's protocol", REPORT_B_FID_STEP, report_b("5"), "step"),
    Setting("snapshots scored beside it, the same way", (REPORT_B_GAN_STEPS,), report_b("5"), "compare_steps",
            note="report B compared the 50,000-step samples by eye; stage fid-b scores them"),
    Setting("our protocol (`cifar fid --select-best RUN`, stage fid)", "every snapshot scored against the TRAINING split; only "
            "the chosen one is scored on the test set, with other noise", ours(
                "choosing the best snapshot on the test set and reporting that score would flatter it; "
                "report B chose without scores")),
    Setting("Inception network", "pytorch-fid's InceptionV3 and weights, pool3, 2048 features", ours(
        "report B does not say which FID code; pytorch-fid's is the reference implementation")),
    Setting("generator BatchNorm when sampling (both protocols)", "running", ours(
        "running statistics (eval mode): images do not depend on the batch they are drawn in; the tutorial "
        "samples in train mode, each batch normalised by its own statistics (`--batch-norm batch`)"),
            "batch_norm"),
    Setting("noise seed", 0, ours("any fixed seed; the test score of a selection uses another"), "seed"),
))

PROTOCOLS: tuple[Protocol, ...] = (CLASSIFIERS, REPORT_A_SEARCH, REPORT_A_FINAL, REPORT_B_CLASSIFIER, DCGAN, FID)


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


REPORT_A_RECIPE = Recipe(
    "report-a", REPORT_A_FINAL,
    shared={"optim.name": "sgd", "optim.nesterov": False, "optim.weight_decay": 0.0, "optim.schedule": "none",
            "run.epochs": 100, "run.full_train": True, "run.batch_size": 128, "run.amp": False,
            **{s.key: s.value for s in REPORT_A_AUGMENT if s.key}},
    models=tuple(RecipeModel(m.label, {"model.name": m.model, "model.activation": m.activation,
                                       "model.dropout": REPORT_A_DROPOUT[m.model], "optim.lr": m.lr,
                                       "optim.momentum": m.momentum, "optim.dampening": m.dampening})
                 for m in REPORT_A_MODELS),
    seeds=(0,),
)

REPORT_B_RECIPE = Recipe(
    "report-b", REPORT_B_CLASSIFIER,
    shared={"optim.name": "adam", "optim.lr": 0.001, "optim.beta1": 0.9, "optim.beta2": 0.999,
            "optim.weight_decay": 0.0, "optim.schedule": "none", "model.dropout": 0.0,
            "augment.hflip": True, "augment.crop_padding": 4, "augment.brightness": 0.0, "augment.contrast": 0.0,
            "augment.saturation": 0.0, "augment.hue": 0.0, "augment.rotation": 0.0,
            "run.steps": REPORT_B_STEPS, "run.full_train": True, "run.batch_size": 128, "run.amp": False,
            "run.eval_test_every": 500},
    models=(RecipeModel("resdw", {"model.name": "resdw"}),),
    seeds=(0, 1, 2),
)

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
        "field, or a `cifar fid` option.",
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
            lines.append(f"| {_md(s.name)} | {_md(s.text)} | {_md(source)} | {f'`{s.key}`' if s.key else ''} |")
        lines.append("")
    lines += ["## Published numbers (shown in the report beside ours)", "",
              "| Number | Value | Source | Not measured here, because |", "|---|---:|---|---|"]
    lines += [f"| {_md(a.what)} | {_md(a.text)} | {a.source.label} | {_md(a.not_measured)} |" for a in ANCHORS]
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


if __name__ == "__main__":
    print(provenance_markdown(), end="")

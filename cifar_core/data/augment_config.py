"""What augmentation a run uses: `AugmentConfig` and its presets. No torch: configs, --help and
the pipeline's settings read it without loading the kernels (cifar_core.data.augment)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from cifar_core.errors import ConfigError
from cifar_core.fields import at_least, between, check_fields, from_mapping, setting


@dataclass(frozen=True)
class AugmentConfig:
    hflip: bool = setting(False, "Random horizontal flip (each image with probability 1/2).")
    crop_padding: int = setting(0, "Reflect padding before a random 32x32 crop (0 = off).", unit="pixels",
                                range=between(0, 16))
    brightness: float = setting(0.0, "Colour jitter: brightness factor in [max(0, 1 - x), 1 + x] (0 = off).",
                                range=at_least(0))
    contrast: float = setting(0.0, "Colour jitter: contrast factor in [max(0, 1 - x), 1 + x] (0 = off).",
                              range=at_least(0))
    saturation: float = setting(0.0, "Colour jitter: saturation factor in [max(0, 1 - x), 1 + x] (0 = off).",
                                range=at_least(0))
    hue: float = setting(0.0, "Colour jitter: hue shift in [-x, x] (0 = off).", unit="turns of the colour wheel",
                         range=between(0, 0.5))
    rotation: float = setting(0.0, "Random rotation by an angle in [-x, x] (0 = off).", unit="degrees",
                              range=between(0, 180))

    def __post_init__(self) -> None:
        # Frozen and built directly in many places: checked on construction, not only in a config.
        check_fields(self, "augment.")

    @classmethod
    def from_dict(cls, values: dict) -> AugmentConfig:
        """Build from plain values (a config file); unknown keys and wrong types are ConfigErrors."""
        return from_mapping(cls, values, "augment.")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def jitter(self) -> tuple[float, float, float, float]:
        return (self.brightness, self.contrast, self.saturation, self.hue)

    @property
    def enabled(self) -> bool:
        return self.hflip or self.crop_padding > 0 or self.rotation > 0 or any(self.jitter)


AUGMENT_PRESETS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(),
    "flip-crop": AugmentConfig(hflip=True, crop_padding=4),  # report B
    "report-a": AugmentConfig(
        hflip=True, crop_padding=4, brightness=0.2, contrast=0.2, saturation=0.2, hue=0.05, rotation=15.0
    ),
}


def resolve_augment(spec: AugmentConfig | str | dict | None) -> AugmentConfig:
    """An AugmentConfig from a config, a preset name, a dict of keys, or None (no augmentation)."""
    if spec is None:
        return AUGMENT_PRESETS["none"]
    if isinstance(spec, AugmentConfig):
        return spec
    if isinstance(spec, dict):
        return AugmentConfig.from_dict(spec)
    if spec not in AUGMENT_PRESETS:
        raise ConfigError(f"unknown augmentation preset {spec!r} (known: {', '.join(AUGMENT_PRESETS)})")
    return AUGMENT_PRESETS[spec]

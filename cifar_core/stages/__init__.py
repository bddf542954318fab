"""The study's stages, registered in the order a study makes them (cifar_core.stages.registry)."""

# isort: off
# Import order is registration order, the study's: a stage comes after the stages it needs.
from cifar_core.stages import data  # noqa: F401
from cifar_core.stages import gan  # noqa: F401
from cifar_core.stages import fid  # noqa: F401
from cifar_core.stages import recipes  # noqa: F401
from cifar_core.stages import search  # noqa: F401
# isort: on
from cifar_core.stages.registry import (  # noqa: F401 - the registry's API
    Context,
    Stage,
    StageUnavailable,
    all_stages,
    attribute,
    get_stage,
    register_stage,
)

"""Model zoo: report A's cnn1..cnn8, report B's resdw, modern references, and the DCGAN pair.

Importing this package registers every model (each module registers on import).
"""

# Registration happens on import: every module of this folder that defines models is listed here.
from cifar_core.models import cnn, dcgan, resdw, resnet, tiny  # noqa: E402,F401
from cifar_core.models.registry import (  # noqa: F401
    ModelEntry,
    count_parameters,
    create_model,
    get_entry,
    list_families,
    list_models,
    parameter_count,
    register_model,
)

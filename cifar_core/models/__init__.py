"""Model zoo: report A's cnn1..cnn8, report B's resdw, modern references, and the DCGAN pair.

Importing this package registers every model (each module registers on import).
"""

from cifar_core.models.registry import (  # noqa: F401
    ModelEntry,
    count_parameters,
    create_model,
    get_entry,
    list_models,
    register_model,
)

# Registration happens on import; keep this list in step with the files in this folder.
# (Each module is added here by its owner as it lands.)

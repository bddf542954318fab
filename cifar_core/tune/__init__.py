"""Ray Tune model selection over the shared training engine (report A's protocol).

Ray is imported only where a search runs (`search`, `trainable`), so reading results needs no Ray.
"""

from cifar_core.tune.space import SearchSpace, flat_params, load_space, space_names  # noqa: F401

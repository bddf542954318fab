"""Ray Tune model selection over the shared training engine (report A's protocol).

- `space`: search spaces as YAML data, validated before Ray starts, turned into a Tune param space.
- `trainable`: the Tune function trainable, one `tune.report` per engine epoch.
- `search`: `run_tune` (Tuner + ASHA, resuming an interrupted experiment).
- `results`: trials.csv, top_k.json, curves.png and summary.json of an experiment.

Ray is imported only where a search runs, so reading results needs no Ray session.
"""

from cifar_core.tune.space import SearchSpace, flat_params, load_space, space_names  # noqa: F401

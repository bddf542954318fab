"""Where a stage's work runs, by concern: `resources` (what a unit of work reserves), `runners` (Ray
tasks or this process, and `submit_stage`, the one way to run a unit), `session` (the one place a Ray
session is opened, and its `Watch` over the driver's waits) and `capacity` (what the cluster's nodes
could ever run). Import from the module that owns a name.
"""

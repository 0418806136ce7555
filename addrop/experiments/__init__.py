"""Experiments built from the engine's runs: the prior experiment and AD-DROP vs vanilla (plans.py), p x q sweeps
(sweeps/), and the benchmark of AD-DROP's cost (bench/). Imports: addrop.engine, addrop.core, config, errors."""

"""What turns the core into fine-tuning runs: models by name (models.py), tasks and data loaders (tasks.py,
data/), tokenization and batches (batching.py), GLUE metrics (metrics.py), the training loop (training.py), run
records on disk (runs/) and AD-DROP in a transformers.Trainer (hf_trainer.py).
Imports: addrop.core, config, errors."""

"""The names of the models addrop-studio ships or builds (models.py loads them), and what to say about each: the
app's picker labels and the commands' notes on a head not trained on the data."""
from __future__ import annotations

from .tasks import normalize_name
from .weights import TRAINED

TINY = ("tiny-bert", "tiny-roberta", "tiny-electra", "tiny-distilbert")
BUILTIN = ("minilm",) + TINY
TRAINED_MODELS = tuple(TRAINED)  # shipped fine-tuned models: (base model, task, weights) in engine/weights.py
MODEL_LABELS = {  # one line each, for the app's model picker
    "minilm-demo": "all-MiniLM-L6-v2 fine-tuned on the built-in demo set (shipped in assets/trained): the "
                   "trained default for the demo data",
    "minilm": "all-MiniLM-L6-v2 (6 layers x 12 heads), shipped with addrop-studio, with an untrained "
              "classification head",
    "tiny-bert": "untrained: a 2-layer, 4-head BERT with random weights: instant demos, meaningless predictions; "
                 "it learns next to nothing, so training on it shows noise",
    "tiny-roberta": "untrained: a 2-layer, 2-head RoBERTa with random weights (training on it shows noise)",
    "tiny-electra": "untrained: a 2-layer, 4-head ELECTRA with random weights (training on it shows noise)",
    "tiny-distilbert": "untrained: a 2-layer, 2-head DistilBERT with random weights (training on it shows noise)",
}


def head_note(name: str, task: str | None = None) -> str | None:
    """What to tell a user whose explanation (attribution, deletion curves) comes from a head that was not trained
    on their data: a built-in model's untrained head, or a shipped model trained on another task; else None."""
    if name in BUILTIN:
        return (f"{name} has an untrained classification head: its predictions and attribution describe a random "
                "classifier (minilm-demo is trained on the demo set; run:PATH takes a run's weights)")
    trained_on = TRAINED[name][1] if name in TRAINED else None
    if trained_on and task and normalize_name(task) != normalize_name(trained_on):
        return (f"{name} was trained on the {trained_on} set, not {task}: its head's classes are {trained_on}'s "
                "(train a model on this task and use run:PATH)")
    return None


def model_choice_label(name: str) -> str:
    """A model's name as a picker shows it: the tiny random-init models are marked untrained."""
    return f"{name} (untrained)" if name in TINY else name  # short: the picker shows about 32 characters

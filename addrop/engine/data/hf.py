"""GLUE tasks through the optional `datasets` package (`nyu-mll/glue`); needs the hub or its cache."""
from __future__ import annotations

from ...errors import UserError
from ..tasks import Split, TaskSpec, get_task
from .glue import GLUE_ENV


def hf_available() -> bool:
    """Whether the optional `datasets` package is installed (the hub may still be out of reach)."""
    import importlib.util

    return importlib.util.find_spec("datasets") is not None


def load_hf(task: str) -> tuple[TaskSpec, Split, Split]:
    """Load a GLUE task through the optional `datasets` package (`nyu-mll/glue`); needs the hub or its cache."""
    spec = get_task(task)
    if spec.hf_name is None:
        raise UserError(f"task {spec.name} is not on the Hugging Face hub; use source 'demo'")
    try:
        import datasets  # noqa: PLC0415 (optional dependency)
    except ImportError:
        raise UserError("the Hugging Face datasets source needs the datasets package, which is not installed here "
                        f"(pip install datasets); or use a GLUE folder (the app's GLUE folder field, --data-dir or "
                        f"{GLUE_ENV})") from None
    try:
        ds = datasets.load_dataset("nyu-mll/glue", spec.hf_name)
    except Exception as e:  # noqa: BLE001 (network, cache, hub errors all end here)
        msg = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserError(f"could not load nyu-mll/glue/{spec.hf_name} from the Hugging Face hub "
                        f"({type(e).__name__}: {msg}); check the connection or use a GLUE folder "
                        f"with --data-dir / {GLUE_ENV}") from None

    def conv(part) -> Split:
        cols = part.to_dict()
        texts = [str(t) for t in cols[spec.hf_cols[0]]]
        pairs = [str(t) for t in cols[spec.hf_cols[1]]] if spec.has_pairs else None
        labels = [float(v) for v in cols["label"]] if spec.is_regression else [int(v) for v in cols["label"]]
        return Split(texts, pairs, labels)

    return spec, conv(ds["train"]), conv(ds[spec.hf_dev_split])

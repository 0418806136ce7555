"""Files drawn from run records: a group's curves.html and a sweep's table.csv and heatmap.html. The command line
and the app's background jobs write them with these, so both give the same files."""
from __future__ import annotations

from pathlib import Path

from ..engine.runs import atomic_write_text, list_runs, metrics_frame
from ..experiments.plans import COMPARE, Plan, compare_panels
from ..experiments.sweeps.results import HEATMAP_FILE, write_table
from .plots import loss_curves, seed_curves, sweep_heatmap

CURVES_FILE = "curves.html"


def write_curves(plan_or_root, kind: str | None = None, title: str | None = None) -> Path | None:
    """Write curves.html into a group folder from the run records on disk (None when there is nothing yet)."""
    if isinstance(plan_or_root, Plan):
        root, kind, title = plan_or_root.root, plan_or_root.kind, plan_or_root.title
    else:
        root = Path(plan_or_root)
    frame = metrics_frame(list_runs(root))
    if frame.empty:
        return None
    if kind == COMPARE:
        fig = seed_curves(frame, label="strategy", panels=compare_panels(frame), title=title)
    else:
        fig = loss_curves(frame, label="strategy", title=title)
    path = root / CURVES_FILE
    atomic_write_text(path, fig.to_html(include_plotlyjs="cdn"))
    return path


def write_sweep_outputs(folder, which: str = "best", metric: str | None = None):
    """(Re)write table.csv and heatmap.html of a sweep folder; returns the table."""
    folder = Path(folder)
    table = write_table(folder, which=which, metric=metric)
    atomic_write_text(folder / HEATMAP_FILE, sweep_heatmap(table).to_html(include_plotlyjs="cdn", full_html=True))
    return table


DELETION_FILES = ("deletion.csv", "deletion.html", "settings.json")


def write_deletion(folder, result) -> list[Path]:
    """deletion.csv (the table), deletion.html (the three measures' curves and the table, self-contained: it
    opens offline) and settings.json into `folder` (made if missing)."""
    import json

    from ..experiments.faithfulness import MEASURES, deletion_summary
    from .plots import deletion_figure

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = result.table
    paths = [folder / name for name in DELETION_FILES]
    atomic_write_text(paths[0], table.to_csv(index=False))
    figs = [deletion_figure(table, m).to_html(include_plotlyjs=(i == 0), full_html=False) for i, m in
            enumerate(MEASURES)]
    lines = "".join(f"<li>{line}</li>" for line in deletion_summary(table))
    html = (f"<html><head><meta charset='utf-8'><title>Deletion curves</title></head><body>"
            f"<h2>Deletion curves ({result.n} examples, {result.seconds:.0f} s)</h2><ul>{lines}</ul>"
            + "".join(figs) + table.round(4).to_html(index=False) + "</body></html>")
    atomic_write_text(paths[1], html)
    atomic_write_text(paths[2], json.dumps(result.settings, indent=2, default=str))
    return paths


REPORT_HTML = "report.html"


def write_study_report(out) -> tuple[dict, list[Path]]:
    """A replication study's report.md (the tables) and report.html (tables and figures, self-contained: it opens
    offline), both computed from the run records under `out`."""
    import html as html_mod

    from ..experiments.replication.report import markdown, write_report
    from .plots import report_figures

    rep, md_path = write_report(out)
    figs = [fig.to_html(include_plotlyjs=(i == 0), full_html=False) for i, (_, fig) in enumerate(report_figures(rep))]
    page = (f"<html><head><meta charset='utf-8'><title>{html_mod.escape(rep['name'])}</title></head><body>"
            + "".join(figs) + f"<pre>{html_mod.escape(markdown(rep))}</pre></body></html>")
    path = Path(out) / REPORT_HTML
    atomic_write_text(path, page)
    return rep, [md_path, path]

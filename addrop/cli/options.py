"""Command-line options made from the config dataclasses' fields: one option per field, its help text from the
field's metadata (`config.setting`), its default from the field. Every command that takes a setting takes it the
same way, so the commands cannot drift apart.
"""
from __future__ import annotations

import argparse
from dataclasses import MISSING, fields

from ..config import AttributionConfig, TrainConfig, with_preset

# The attribution settings a training command takes (the rest are the prior experiment's or the explorer's).
TRAIN_ATTRIBUTION = ("method", "layers", "steps", "target", "label", "p", "q", "count", "attribution_pass")
_TYPES = {"int": int, "float": float, "str": str}
_MADE = "_options_made"  # parser default: {dataclass name: the fields that got an option}


_GIVEN = "_options_given"  # namespace attribute: the dests set on the command line (a preset fills the rest)


def _note(namespace, dest: str) -> None:
    given = set(getattr(namespace, _GIVEN, None) or ())
    setattr(namespace, _GIVEN, given | {dest})


class _Store(argparse.Action):
    """argparse's plain store, noting that the option was given."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        _note(namespace, self.dest)


class _Flag(argparse.BooleanOptionalAction):
    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        _note(namespace, self.dest)


def _python_type(annotation: str):
    """'int', 'float | None', 'tuple[int, ...] | None', ... -> the type argparse converts with (layers stay text:
    the dataclass parses them)."""
    first = str(annotation).split("|")[0].strip()
    return _TYPES.get(first, str)


def _default(f):
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else None


def add_options(parser, cls, only=None, skip=(), defaults: dict | None = None) -> None:
    """Add one option per field of the dataclass `cls` to `parser` (a parser or an argument group), in field
    order. `only`/`skip` choose fields; `defaults` overrides a field's default for this command."""
    defaults = defaults or {}
    made = []
    for f in fields(cls):
        meta = f.metadata
        if meta.get("cli") is False or f.name in skip or (only is not None and f.name not in only):
            continue
        flags = [meta.get("flag") or "--" + f.name.replace("_", "-"), *meta.get("aliases", ())]
        default = defaults.get(f.name, _default(f))
        if isinstance(default, tuple):
            default = ",".join(map(str, default))
        help_text = meta.get("help", "")
        kw: dict = {"dest": f.name, "default": default}
        if str(f.type).startswith("bool"):
            kw["action"] = _Flag
        else:
            kw["action"] = _Store
            kw["type"] = _python_type(f.type)
            if meta.get("choices"):
                kw["choices"] = list(meta["choices"])
            if meta.get("metavar"):
                kw["metavar"] = meta["metavar"]
            if default is not None:
                help_text += f" (default {default if not isinstance(default, float) else f'{default:g}'})"
        parser.add_argument(*flags, help=help_text, **kw)
        made.append(f.name)
    known = parser.get_default(_MADE) or {}
    parser.set_defaults(**{_MADE: {**known, cls.__name__: tuple(known.get(cls.__name__, ())) + tuple(made)}})


def build(cls, args, **overrides):
    """An instance of `cls` from the parsed options its fields made (fields without an option keep their
    default), with `overrides` on top."""
    made = (getattr(args, _MADE, None) or {}).get(cls.__name__, ())
    kw = {name: getattr(args, name) for name in made}
    kw.update(overrides)
    if cls is TrainConfig and "preset" in kw:  # the preset fills every setting not given on the command line
        given = given_options(args) | set(overrides)
        kw = with_preset(kw, kw["preset"], given)
    return cls(**kw)


def given_options(args) -> set:
    """The dests of the options given on the command line (not those left at their defaults)."""
    return set(getattr(args, _GIVEN, None) or ())


def attribution_from(args, **overrides) -> AttributionConfig:
    return build(AttributionConfig, args, **overrides)


def train_config_from(args, attribution: AttributionConfig, **overrides) -> TrainConfig:
    return build(TrainConfig, args, attribution=attribution, **overrides)


def group_name_help(parser, generated: str) -> None:
    """--name of a command that writes a group of runs (prior, compare): it names the group's folder, not a run."""
    for action in parser._actions:
        if action.dest == "name":
            action.help = (f"the folder of this group of runs under --out (a safe file name; default {generated}); "
                           "an existing one is refused")

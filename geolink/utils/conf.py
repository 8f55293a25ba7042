"""One config mechanism for every step (synth, map, reconstruct, train, index, demo, study).

A step's options are a dataclass (the schema: names, types, defaults). A config is built in
layers, each merged strictly onto the one before, so a mistyped key or a value of the wrong type
fails at load, naming the key and the layer:

    schema defaults -> named preset (``geolink/configs/<step>/<name>.yaml``; a preset may
    ``_base_:`` another of its step) -> a YAML file -> overrides (``key=value`` strings or a
    mapping of dotted keys to values)

Choices are :class:`Choice` enums: a wrong value fails at load with the allowed ones. A field
typed as a mapping (``dict[str, X]``) takes any key; ``dict[str, Any]`` ones hold options
checked by the part they are handed to, such as a dataset reader or a reconstruction backend.

A step records its resolved config next to its output with :func:`record`, which refuses an
output folder made with a different config unless told to overwrite. Keys listed in the schema's
``RUNTIME`` class variable (worker counts, devices) do not change the output and are not compared.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from geolink.errors import ConfigError
from geolink.utils.io import atomic_write_text

T = TypeVar("T")
CONFIG_FILE = "config.yaml"


class Choice(str, Enum):
    """A config option's allowed values. Members compare equal to their string values and print
    as them, so code and YAML read ``"orbit"``, never ``Mode.orbit``."""

    def __str__(self) -> str:
        return str(self.value)

    __format__ = str.__format__  # f"{x}" gives the value on every Python version


def _configs(step: str):
    return resources.files("geolink") / "configs" / step


def preset_names(step: str) -> list[str]:
    """The named presets shipped for ``step``."""
    root = _configs(step)
    if not root.is_dir():
        return []
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def read_yaml(path: Any, what: str) -> DictConfig:
    """A YAML mapping as a DictConfig; ConfigError naming ``what`` otherwise."""
    try:
        cfg = OmegaConf.create(path.read_text())
    except Exception as e:  # yaml.YAMLError, OmegaConf's own errors
        raise ConfigError(f"{what} is not valid YAML: {e}") from e
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"{what} must be a mapping")
    return cfg


def preset_layers(step: str, name: str, seen: tuple[str, ...] = ()) -> list[DictConfig]:
    """The preset ``name`` of ``step`` and the presets it is based on, base first."""
    path = _configs(step) / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(
            f"unknown {step} preset '{name}'; available: {', '.join(preset_names(step))}"
        )
    if name in seen:
        raise ConfigError(f"{step} preset '{name}' includes itself through _base_")
    cfg = read_yaml(path, f"{step} preset '{name}'")
    base = cfg.pop("_base_", None)
    chain = preset_layers(step, str(base), (*seen, name)) if base else []
    return [*chain, cfg]


def _node(cfg: DictConfig, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            return None
        node = node._get_node(part)
    return node


def _is_list(node: Any) -> bool:
    return isinstance(node, Sequence) and not isinstance(node, str)  # ListConfig, TupleConfig


def _tuples(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return tuple(_tuples(v) for v in value)
    return value


def _freeze_tuples(obj: Any) -> Any:
    """Tuple-typed fields hold tuples all the way down (YAML gives lists inside them)."""
    if not dataclasses.is_dataclass(obj):
        return obj
    changes = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        new = _tuples(value) if isinstance(value, tuple) else _freeze_tuples(value)
        if new is not value:
            changes[f.name] = new
    return dataclasses.replace(obj, **changes) if changes else obj


Overrides = Mapping[str, Any] | Sequence["str | Mapping[str, Any]"]


def _override_layer(base: DictConfig | None, overrides: Overrides) -> DictConfig:
    """Overrides as one layer: ``key=value`` strings (values read as YAML), mappings of dotted
    or nested keys, or a sequence mixing both (later items win). A plain comma-separated value
    given for a list option is read as the list (``regions=a,b``)."""
    items = [overrides] if isinstance(overrides, (Mapping, str)) else list(overrides)
    layer = OmegaConf.create({})
    for item in items:
        if isinstance(item, Mapping):
            for key, value in item.items():
                if isinstance(value, str) and _is_list(_node(base, str(key))):
                    value = [v.strip() for v in value.split(",")] if value else []
                part = OmegaConf.create({})
                try:
                    OmegaConf.update(part, str(key), value, force_add=True)
                    layer = OmegaConf.merge(layer, part)
                except OmegaConfBaseException as e:
                    raise ConfigError(f"bad override '{key}': {e.msg}") from e
            continue
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        if _is_list(_node(base, key)) and "," in value and "[" not in value:
            value = f"[{value}]"
        try:
            layer = OmegaConf.merge(layer, OmegaConf.from_dotlist([f"{key}={value}"]))
        except Exception as e:  # yaml errors, OmegaConf's grammar errors
            raise ConfigError(f"bad override '{item}': {e}") from e
    return layer


def merged(*layers: Overrides) -> dict[str, Any]:
    """Override layers (as :func:`load` takes them) merged into one nested plain mapping."""
    out = OmegaConf.create({})
    for layer in layers:
        out = OmegaConf.merge(out, _override_layer(None, layer))
    return OmegaConf.to_container(out)  # type: ignore[return-value]


def _unlock_dicts(node: DictConfig) -> None:
    """Mapping-typed fields (``dict[str, X]``) take any key (their values keep their type);
    nested dataclasses stay strict."""
    for key in node:
        child = node._get_node(key)
        if isinstance(child, DictConfig):
            if child._metadata.object_type is dict:
                OmegaConf.set_struct(child, False)
            else:
                _unlock_dicts(child)


def _schema(schema: type) -> DictConfig:
    cfg = OmegaConf.structured(schema)
    OmegaConf.set_struct(cfg, True)
    _unlock_dicts(cfg)
    return cfg


def _merge(cfg: DictConfig, layers: list[tuple[str, Any]], step: str) -> DictConfig:
    for what, layer in layers:
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except ConfigKeyError as e:  # a key the schema does not have: name the known ones
            key = str(getattr(e, "full_key", None) or e.key)
            parent = OmegaConf.select(cfg, key.rpartition(".")[0]) if "." in key else cfg
            known = ", ".join(parent.keys()) if isinstance(parent, DictConfig) else ""
            raise ConfigError(
                f"{what}: unknown {step} parameter '{key}'"
                + (f"; available: {known}" if known else "")
            ) from e
        except OmegaConfBaseException as e:
            key = getattr(e, "full_key", None) or _culprit(cfg, layer)
            msg = str(e.msg).splitlines()[0] if e.msg else "the value does not fit the type"
            raise ConfigError(f"{what}: invalid key or value '{key}': {msg}") from e
    return cfg


def _culprit(cfg: DictConfig, layer: Any) -> str:
    """The top-level key of ``layer`` that fails to merge (OmegaConf leaves some errors
    without their key)."""
    for key in layer:
        try:
            OmegaConf.merge(cfg, {key: layer[key]})
        except OmegaConfBaseException:
            return str(key)
    return ""


def load(
    schema: type[T],
    step: str,
    preset: str | None = None,
    *,
    file: str | Path | None = None,
    overrides: Overrides | None = None,
) -> T:
    """The resolved config of ``step`` (an instance of ``schema``); see the module docstring."""
    cfg = _schema(schema)
    layers: list[tuple[str, Any]] = []
    if preset:
        layers += [(f"{step} preset '{preset}'", c) for c in preset_layers(step, preset)]
    if file:
        path = Path(file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        fc = read_yaml(path, f"config file {path}")
        base = fc.pop("_base_", None)
        if base:
            layers += [(f"{step} preset '{base}'", c) for c in preset_layers(step, str(base))]
        layers.append((f"config file {path}", fc))
    cfg = _merge(cfg, layers, step)
    if overrides:
        cfg = _merge(cfg, [("overrides", _override_layer(cfg, overrides))], step)
    try:
        return _freeze_tuples(OmegaConf.to_object(cfg))
    except OmegaConfBaseException as e:  # a required value left missing
        raise ConfigError(f"{step} config: {str(e.msg).splitlines()[0]}") from e


def to_dict(conf: Any) -> dict[str, Any]:
    """Plain data (lists, strings for enums) of a resolved config."""
    return _lists(OmegaConf.to_container(OmegaConf.structured(conf), enum_to_str=True))


def _lists(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


def dump(conf: Any) -> str:
    """The resolved config as YAML (what :func:`record` writes)."""
    return OmegaConf.to_yaml(OmegaConf.structured(conf))


def parse(schema: type[T], text: str, what: str) -> T:
    """A config written by :func:`dump`, read strictly against ``schema``."""
    try:
        layer = OmegaConf.create(text)
    except Exception as e:
        raise ConfigError(f"{what} is not valid YAML: {e}") from e
    if not isinstance(layer, DictConfig):
        raise ConfigError(f"{what} is not a YAML mapping")
    cfg = _merge(_schema(schema), [(what, layer)], what)
    return _freeze_tuples(OmegaConf.to_object(cfg))


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def dotlist(tree: Mapping[str, Any]) -> list[str]:
    """``key=value`` strings (dotted keys, values as YAML) of a nested mapping: how a partial
    config is written on a command line."""
    import json

    def text(v: Any) -> str:
        if isinstance(v, (list, tuple)):
            return "[" + ",".join(text(x) for x in v) + "]"
        return v if isinstance(v, str) else json.dumps(v)

    return [f"{k}={text(v)}" for k, v in _flat(dict(tree)).items() if k]


def differences(
    old: Mapping[str, Any], new: Mapping[str, Any], ignore: Iterable[str] = ()
) -> list[str]:
    """``key: old -> new`` for every dotted key whose value differs (``ignore``: not compared)."""
    a, b = _flat(dict(old)), _flat(dict(new))
    skip = tuple(ignore)
    keys = [
        k for k in sorted(set(a) | set(b)) if not any(k == s or k.startswith(s + ".") for s in skip)
    ]
    return [
        f"{k}: {a.get(k, '<absent>')!r} -> {b.get(k, '<absent>')!r}"
        for k in keys
        if a.get(k) != b.get(k)
    ]


def record(
    out_dir: str | Path,
    conf: Any,
    step: str,
    overwrite: bool = False,
    hint: str = "use another output folder or --overwrite",
) -> Path:
    """Write ``conf`` to ``out_dir/config.yaml``. An existing one with other values (except the
    schema's ``RUNTIME`` keys) is a ConfigError naming them, unless ``overwrite``."""
    path = Path(out_dir) / CONFIG_FILE
    if path.is_file() and not overwrite:
        try:
            old = OmegaConf.to_container(OmegaConf.create(path.read_text()))
        except Exception as e:
            raise ConfigError(f"{path} is not valid YAML: {e}") from e
        diff = differences(old, to_dict(conf), getattr(conf, "RUNTIME", ()))  # type: ignore[arg-type]
        if diff:
            shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
            raise ConfigError(
                f"{Path(out_dir)} was made with another {step} config ({shown}); {hint}"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, dump(conf))
    return path


def field_names(schema: type) -> list[str]:
    return [f.name for f in dataclasses.fields(schema)]


__all__ = [
    "CONFIG_FILE",
    "Choice",
    "differences",
    "dotlist",
    "dump",
    "field_names",
    "load",
    "merged",
    "parse",
    "preset_layers",
    "preset_names",
    "read_yaml",
    "record",
    "to_dict",
]

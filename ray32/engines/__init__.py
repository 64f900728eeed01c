"""Engines: one interface (``ray32.engines.base.Engine``), one module per engine, and a registry of what imports.

``available_engines()`` lists the engines whose module imports on this machine (an engine with a missing optional
dependency is left out, it does not break ``import ray32``); ``get_engine(name)`` returns a fresh instance.

Example:
    >>> engine = get_engine("composite")                       # doctest: +SKIP
    >>> prepared = engine.prepare(shot, engine.prepare_settings(request, shot))   # doctest: +SKIP
    >>> for chunk in engine.render(prepared, request): ...     # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import logging

from ray32.engines.base import Engine, EngineError, Prepared

log = logging.getLogger(__name__)

_REGISTRY: dict[str, str] = {
    "composite": "ray32.engines.composite:CompositeEngine",
    "wan-vace": "ray32.engines.wan_vace:WanVaceEngine",
}
"""Engine name -> ``"module:Class"``. Modules are imported only when listed or asked for."""

__all__ = ["Engine", "EngineError", "Prepared", "available_engines", "engine_class", "get_engine", "register_engine"]


def register_engine(name: str, target: str) -> None:
    """Add an engine to the registry: ``target`` is ``"package.module:ClassName"``."""
    if ":" not in target:
        raise ValueError(f"target must be 'module:Class', got {target!r}")
    _REGISTRY[name] = target


def _load(name: str) -> type[Engine]:
    module_name, cls_name = _REGISTRY[name].split(":")
    module = importlib.import_module(module_name)
    return getattr(module, cls_name)


def available_engines() -> list[str]:
    """Names of the engines whose module imports here, in registry order."""
    names = []
    for name in _REGISTRY:
        try:
            _load(name)
        except (ImportError, AttributeError) as ex:
            log.debug("engine %s is not available: %s", name, ex)
            continue
        names.append(name)
    return names


def get_engine(name: str, **kwargs) -> Engine:
    """A new instance of the named engine.

    Args:
        name: a registry name (``"composite"``, ``"wan-vace"``).
        **kwargs: passed to the engine's constructor.

    Raises:
        EngineError: unknown name, or an engine that cannot be imported here (the message says why and lists
            the available ones).
    """
    if name not in _REGISTRY:
        raise EngineError(f"unknown engine {name!r}; available here: {', '.join(available_engines()) or 'none'}")
    try:
        cls = _load(name)
    except (ImportError, AttributeError) as ex:
        raise EngineError(f"engine {name!r} cannot be loaded on this machine ({ex}); available here: "
                          f"{', '.join(available_engines()) or 'none'}") from ex
    return cls(**kwargs)


def engine_class(name: str) -> type[Engine]:
    """The named engine's class, not instantiated (its ``ignores`` and ``refusals`` are checked at plan time).

    Raises:
        EngineError: as ``get_engine``.
    """
    if name not in _REGISTRY:
        raise EngineError(f"unknown engine {name!r}; available here: {', '.join(available_engines()) or 'none'}")
    try:
        return _load(name)
    except (ImportError, AttributeError) as ex:
        raise EngineError(f"engine {name!r} cannot be loaded on this machine ({ex}); available here: "
                          f"{', '.join(available_engines()) or 'none'}") from ex

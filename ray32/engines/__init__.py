"""Engines: one interface (``ray32.engines.base.Engine``), one module per engine, and a registry of what each is.

The registry (``ENGINES``) is the one home of an engine's facts that others need without importing it (no torch on
the planning path): its class, its version (it goes into variant ids), whether it wants a GPU and whether it takes
weights (``model_dir``). ``available_engines()`` lists the engines whose module imports on this machine (an engine
with a missing optional dependency is left out, it does not break ``import ray32``); ``get_engine(name)`` returns a
fresh instance; ``shared_engine(name, ...)`` the one instance of this process (a campaign worker loads a model once
and keeps its caches across variants).

Example:
    >>> engine = get_engine("composite")                       # doctest: +SKIP
    >>> prepared = engine.prepare(shot, engine.prepare_settings(request, shot))   # doctest: +SKIP
    >>> for chunk in engine.render(prepared, request): ...     # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from ray32.engines.base import Engine, EngineError, Prepared

log = logging.getLogger(__name__)

MODEL_DIR_ENV = "RAY32_MODEL_DIR"
"""Environment variable naming the weights folder of an engine that takes weights, when nothing else names it
(cluster workers whose path to the weights differs from the submitting machine's)."""


@dataclass(frozen=True)
class EngineInfo:
    """What the registry knows of an engine without importing it.

    Attributes:
        target: ``"package.module:ClassName"``.
        version: goes into variant ids; bump it when the same request would give different pixels (the class's
            ``version`` is this value).
        gpu: renders want a GPU (campaign runs give each render one GPU slot).
        weights: the constructor takes ``model_dir`` (a folder of weights).
        check: ``"module:function"`` checking a weights folder (or None: the default place) without loading it;
            it raises a ``Ray32Error`` saying what was looked for and where.
        generative: a model re-renders every pixel (the output matches the source only in layout, motion and
            light, not pixel for pixel): QA judges its variants on grade-invariant measures (``qa.facts.judging``).
    """

    target: str
    version: str
    gpu: bool = False
    weights: bool = False
    check: str | None = None
    generative: bool = False


ENGINES: dict[str, EngineInfo] = {
    # composite 1.1, wan-vace 3: the label swap/lock withholds the label where its track is lost
    "composite": EngineInfo("ray32.engines.composite:CompositeEngine", "1.1"),
    "wan-vace": EngineInfo("ray32.engines.wan_vace:WanVaceEngine", "3", gpu=True, weights=True,
                           check="ray32.engines.wan_vace:check_model", generative=True),
}
"""Engine name -> ``EngineInfo``. Modules are imported only when listed or asked for."""

__all__ = ["ENGINES", "MODEL_DIR_ENV", "Engine", "EngineError", "EngineInfo", "Prepared", "available_engines",
           "check_weights", "engine_class", "engine_info", "get_engine", "register_engine", "shared_engine"]


def register_engine(name: str, target: str, *, version: str = "0", gpu: bool = False, weights: bool = False,
                    check: str | None = None, generative: bool = False) -> None:
    """Add an engine to the registry: ``target`` is ``"package.module:ClassName"`` (see ``EngineInfo``)."""
    if ":" not in target:
        raise ValueError(f"target must be 'module:Class', got {target!r}")
    ENGINES[name] = EngineInfo(target, version, gpu=gpu, weights=weights, check=check, generative=generative)


def engine_info(name: str) -> EngineInfo:
    """The registry entry of ``name``.

    Raises:
        EngineError: an unknown name (the message lists the known ones).
    """
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
    return ENGINES[name]


def _attr(target: str):
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)


def _load(name: str) -> type[Engine]:
    return _attr(ENGINES[name].target)


def available_engines() -> list[str]:
    """Names of the engines whose module imports here, in registry order."""
    names = []
    for name in ENGINES:
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
        **kwargs: passed to the engine's constructor (``model_dir`` only to an engine that takes weights).

    Raises:
        EngineError: unknown name, an engine that cannot be imported here (the message says why and lists
            the available ones), or weights given to an engine that takes none.
    """
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; available here: {', '.join(available_engines()) or 'none'}")
    if kwargs.get("model_dir") is not None and not ENGINES[name].weights:
        weighted = [n for n, e in ENGINES.items() if e.weights]
        raise EngineError(f"a model folder is for engines that take weights ({', '.join(weighted)}), not {name!r}")
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
    if name not in ENGINES:
        raise EngineError(f"unknown engine {name!r}; available here: {', '.join(available_engines()) or 'none'}")
    try:
        return _load(name)
    except (ImportError, AttributeError) as ex:
        raise EngineError(f"engine {name!r} cannot be loaded on this machine ({ex}); available here: "
                          f"{', '.join(available_engines()) or 'none'}") from ex


_SHARED: dict[tuple, Engine] = {}
_SHARED_LOCK = threading.Lock()


def shared_engine(name: str, **kwargs) -> Engine:
    """This process's one instance of ``get_engine(name, **kwargs)``: made on first use, then reused, so a worker
    (a Prefect thread pool, a Dask worker, a Ray worker process) loads an engine's weights once and keeps its caches
    (prompt embeddings, prepared latents) across variants. Same arguments, same instance."""
    key = (name, tuple(sorted((k, str(v)) for k, v in kwargs.items())))
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = get_engine(name, **kwargs)
        return _SHARED[key]


def resolve_model_dir(name: str, model_dir: str | os.PathLike | None = None) -> Path | None:
    """The weights folder an engine uses: ``model_dir`` when given, else ``$RAY32_MODEL_DIR``, else None (the
    engine's default place); always None for an engine that takes no weights and was given none."""
    if model_dir is not None:
        return Path(model_dir).expanduser()
    env = os.environ.get(MODEL_DIR_ENV)
    if env and engine_info(name).weights:
        return Path(env).expanduser()
    return None


def check_weights(name: str, model_dir: str | os.PathLike | None = None) -> Path | None:
    """Check, without loading anything, that an engine's weights are there (``resolve_model_dir``'s folder).

    Returns:
        The folder that will be used (None for an engine without weights).

    Raises:
        EngineError: weights given to an engine that takes none. ModelNotFoundError (a ``Ray32Error``): a missing
            or incomplete folder, with what was looked for and where.
    """
    info = engine_info(name)
    folder = resolve_model_dir(name, model_dir)
    if not info.weights:
        if folder is not None:
            weighted = [n for n, e in ENGINES.items() if e.weights]
            raise EngineError(f"a model folder is for engines that take weights ({', '.join(weighted)}), "
                              f"not {name!r}")
        return None
    if info.check:
        return _attr(info.check)(folder)
    return folder

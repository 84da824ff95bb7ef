"""Samplers by name: the registry's declaration (:mod:`mdm_energy.registry`) and its class, imported on first use."""

from __future__ import annotations

from typing import Any, Iterator, Mapping

from ..registry import SAMPLERS, sampler_names, sampler_options, sampler_spec
from .base import Sampler

__all__ = ["sampler_class", "make_sampler", "SAMPLER_CLASSES"]


def sampler_class(name: str) -> type[Sampler]:
    """The torch class of the registered sampler ``name`` (``ValueError`` naming it when it cannot be imported
    or is not a :class:`~mdm_energy.sampling.base.Sampler`)."""
    spec = sampler_spec(name)
    cls = spec.load()
    if not (isinstance(cls, type) and issubclass(cls, Sampler)):
        raise ValueError(f"the {name} sampler's target {cls!r} is not a subclass of mdm_energy.sampling.Sampler")
    if cls.__dict__.get("name") != name:  # one class declared under several names: a subclass per name
        cls = type(cls.__name__, (cls,), {"name": name, "__module__": cls.__module__, "__qualname__": cls.__qualname__})
        object.__setattr__(spec, "target", cls)
    return cls


def make_sampler(name: str, **options: Any) -> Sampler:
    """A sampler by its registry name (:mod:`mdm_energy.registry`) with ``options``; an option the sampler
    does not take raises ``ValueError`` naming it (nothing is silently ignored)."""
    sampler_options(name, **options)  # unknown names and options: the registry's message
    return sampler_class(name)(**options)


class _Classes(Mapping):
    """``SAMPLER_CLASSES[name]``: the class of every registered sampler (plug-ins included), loaded on access."""

    def __getitem__(self, name: str) -> type[Sampler]:
        if name not in SAMPLERS and name not in sampler_names():
            raise KeyError(name)
        return sampler_class(name)

    def __iter__(self) -> Iterator[str]:
        return iter(sampler_names())

    def __len__(self) -> int:
        return len(sampler_names())


#: The torch class of every sampler of the registry (a live view).
SAMPLER_CLASSES: Mapping[str, type[Sampler]] = _Classes()

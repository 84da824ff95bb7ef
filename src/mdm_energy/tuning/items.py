"""Per-item scores of item objectives, kept so that nothing is scored twice (docs/design.md §6).

An :class:`~mdm_energy.tuning.objectives.ItemObjective` writes each item's score under its schedule's
spec. :class:`ItemStore` keeps them in memory; :class:`StudyItemStore` keeps them with the Optuna study
(one study attribute ``items:<spec>`` per schedule), so they survive the process, are shared by every
worker of the study — on any machine — and a finalist re-scored on a larger subset, or a trial redone
after its worker died, reuses every item already scored.
"""

from __future__ import annotations

__all__ = ["ItemStore", "StudyItemStore"]


class ItemStore:
    """Item scores by schedule spec, in this process's memory."""

    def __init__(self) -> None:
        self._scores: dict[str, dict[int, float]] = {}

    def get(self, spec: str) -> dict[int, float]:
        """The scores stored for ``spec``: item id -> score (a copy)."""
        return dict(self._scores.get(spec, {}))

    def put(self, spec: str, scores: dict[int, float]) -> None:
        """Add (or overwrite) item scores of ``spec``."""
        self._scores.setdefault(spec, {}).update(scores)


class StudyItemStore(ItemStore):
    """Item scores as attributes of an Optuna study (``items:<spec>`` -> ``{"<id>": score}``).

    Only the process evaluating a schedule writes its attribute (the tuner claims a point before
    evaluating it), so a read-merge-write per chunk is safe."""

    def __init__(self, study) -> None:
        super().__init__()
        self.study = study

    def get(self, spec: str) -> dict[int, float]:
        from ._optuna import study_user_attr

        stored = study_user_attr(self.study, f"items:{spec}", {})  # this schedule's scores alone
        return {int(k): float(v) for k, v in stored.items()}

    def put(self, spec: str, scores: dict[int, float]) -> None:
        merged = {str(k): v for k, v in self.get(spec).items()}
        merged.update({str(k): float(v) for k, v in scores.items()})
        self.study.set_user_attr(f"items:{spec}", merged)

"""What ``mdm-energy demo`` computes, on embedded defaults (no downloads), as typed results.

In a few seconds it shows what the tool is for: the schedules of the Beta family and the tokens they
unmask per step, their energies (every geodesic pair costs exactly π², mismatched pairs more), the
brute-force check that the three path energies of a masked diffusion model are proportional while those
of uniform-noise diffusion are not, the paper's toy made exact (the best schedule depends on the task),
an exact-KL comparison of schedules on a structured law, and schedules compared on the committed task
models at low step counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..energy import BruteForceEnergies, brute_force_energies, discrete_energy, energy_J, random_distribution
from ..exact import ExactDenoiser, ExactResult, exact_sampler
from ..schedules import parse_schedule
from ..tuning import ExactGridStudy, ExactKLObjective, GridPoint, beta_grid, exact_grid_study

__all__ = ["EXACT_DIST", "EXACT_STEPS", "DEMO_SCHEDULES", "ToyTarget", "RealTaskCell", "RealTaskTable", "DemoResult",
           "run_demo"]

EXACT_DIST, EXACT_STEPS = "templates:7,3,0", 4
DEMO_SCHEDULES = ["linear", "sin2", "sine", "maskgit", "beta:0.9,0.3", "beta:1,0.2", "beta:0.3,0.9", "beta:0.9,0.9"]
TOY_SCHEDULES = ("beta:0.9,0.3", "beta:0.3,0.9")
#: The paper's toy and the demo's exact comparison reveal random positions (fixed-count, random remasking).
DEMO_REMASKING = "random"


@dataclass(frozen=True)
class ToyTarget:
    """One target of the paper's toy: the best grid Beta and the exact laws of the toy schedules."""

    best: GridPoint
    laws: dict[str, ExactResult]


@dataclass(frozen=True)
class RealTaskCell:
    value: float
    stderr: float
    n: int


@dataclass(frozen=True)
class RealTaskTable:
    """Schedules against low step counts on one committed task model (test split)."""

    metric: str
    steps: list[int]
    schedules: list[str]
    tuned: "str | None"
    cells: dict[tuple[str, int], RealTaskCell] = field(default_factory=dict)


@dataclass(frozen=True)
class DemoResult:
    length: int
    steps: int
    counts: dict[str, list[int]]
    energies: dict[str, dict[str, float]]
    brute_force: dict[str, BruteForceEnergies]
    toy: dict[str, ToyTarget]
    exact: ExactGridStudy
    real_tasks: dict[str, RealTaskTable]


def _energies(length: int, steps: int) -> tuple[dict, dict]:
    scheds = [parse_schedule(s) for s in DEMO_SCHEDULES]
    counts = {s.spec: s.counts(length, steps).tolist() for s in scheds}
    energies = {s.spec: {"own_gamma": energy_J(s), "gamma_t": energy_J(s, "sin2"), "gamma_linear": energy_J(s, "linear"),
                         f"D_{steps}_gamma_t": discrete_energy(s, "sin2", steps)} for s in scheds}
    return counts, energies


def _toy() -> dict[str, ToyTarget]:
    out = {}
    for name in ("toy1", "toy2"):
        den = ExactDenoiser(name)
        grid = beta_grid(ExactKLObjective(den, "fixed", 3, DEMO_REMASKING))
        best = min(grid, key=lambda g: (g.kl, g.a, g.b))
        out[name] = ToyTarget(best, {s: exact_sampler(den, "fixed", s, 3, DEMO_REMASKING) for s in TOY_SCHEDULES})
    return out


def _real_tasks(folder: Path, limit: int, log: Callable[[str], None]) -> dict[str, RealTaskTable]:
    """Schedules compared on each committed task model at its lowest step counts (skipped if absent)."""

    from ..models import load_model
    from ..sampling import FixedCountSampler
    from ..tasks import TASKS, get_task
    from ..tasks.evaluate import evaluate, load_task_examples
    from ..tasks.tuned import TUNED_FILE, tuned_schedule

    out: dict[str, RealTaskTable] = {}
    for name in TASKS:
        ck = folder / name
        if not (ck / "model.safetensors").is_file():
            log(f"      {name}: no checkpoint in {str(ck)!r}, skipped")
            continue
        task, model = get_task(name), load_model(ck)
        record, why = tuned_schedule(ck, task)  # a schedule tuned on other weights or metric is not the tuned one
        tuned = record["schedule"] if record else None
        if record is None and (ck / TUNED_FILE).is_file():
            log(f"      {name}: tuned schedule not used ({why})")
        specs = ["linear", "sin2", "beta:0.9,0.3"] + ([tuned] if tuned and tuned not in ("linear", "sin2", "beta:0.9,0.3") else [])
        steps = sorted({max(2, task.gen_len // 16), max(2, task.gen_len // 8)})
        test = load_task_examples(task, "test", limit, 0)
        table = RealTaskTable(task.metric, steps, specs, tuned)
        for spec in specs:
            for n in steps:
                r = evaluate(task, model, test, FixedCountSampler(spec, n, remasking="low_confidence"), seed=0)
                table.cells[(spec, n)] = RealTaskCell(r.value, r.stderr, r.n)
        out[name] = table
        log(f"      {name}: done")
    return out


#: The most steps the demo tabulates and draws per schedule.
MAX_DEMO_STEPS = 1024


def run_demo(*, length: int = 256, steps: int = 8, checkpoints: "str | Path" = "checkpoints", limit: int = 100,
             log: Callable[[str], None] = lambda msg: None) -> DemoResult:
    """Compute every part of the demo; ``log`` receives one line per stage. A missing ``checkpoints``
    folder skips the real-task section."""
    if steps > MAX_DEMO_STEPS:
        raise ValueError(f"the demo tabulates and draws at most {MAX_DEMO_STEPS:,} steps, got {steps:,}")
    if Path(checkpoints).exists() and not Path(checkpoints).is_dir():
        raise ValueError(f"checkpoints must be a folder of trained task models, got the file {str(checkpoints)!r}")
    from ..limits import check_memory
    from ..tasks.evaluate import EXAMPLE_BYTES

    check_memory(limit * EXAMPLE_BYTES, f"{limit:,} test examples per task")
    log("[1/6] schedules and tokens per step")
    log("[2/6] energies J[alpha; gamma] (quadrature in the geodesic variable)")
    counts, energies = _energies(length, steps)
    log("[3/6] brute-force path energies, n=3 tokens, d=2 symbols, alpha=sin2, gamma=t")
    brute = {f"{path}/seed{seed}": brute_force_energies(random_distribution(3, 2, seed), "sin2", "sin2", path)
             for path in ("mdm", "uniform") for seed in (0, 1)}
    log("[4/6] the paper's toy, exact: best Beta schedule per target (fixed-count random, N=3)")
    toy = _toy()
    log(f"[5/6] exact KL of schedules on {EXACT_DIST}, fixed-count random, N={EXACT_STEPS}")
    exact = exact_grid_study(ExactDenoiser(EXACT_DIST), "fixed", EXACT_STEPS, remasking=DEMO_REMASKING)
    log(f"[6/6] real tasks at low step counts (checkpoints in {str(checkpoints)!r})")
    real = _real_tasks(Path(checkpoints), limit, log)
    return DemoResult(length, steps, counts, energies, brute, toy, exact, real)

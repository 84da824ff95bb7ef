"""Break each behaviour users rely on, once, and check that the test meant to guard it fails.

Each mutation replaces one exact piece of source text, runs the named tests, and restores the file. A
mutation *survives* when its tests still pass — a gap in the suite. Run it from the repository root on a
quiet machine (it runs pytest once per mutation):

    python scripts/mutation_check.py [--only NAME,NAME] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "mdm_energy"

#: (name, file, original text, mutated text, tests that must fail)
MUTATIONS = [
    ("elbo: divide by k instead of k/m", "integrations/lm_eval.py", "/ (k / m)).sum())", "/ k).sum())",
     "tests/test_lm_eval_likelihood.py"),
    ("greedy check: random order", "integrations/lm_eval.py", 'remasking="low_confidence", temperature=0.0)(',
     'remasking="random", temperature=0.0)(', "tests/test_lm_eval_likelihood.py"),
    ("loss: no 1/t weight", "training/trainer.py", "weights = (1.0 / t.expand(B, T))[masked]",
     "weights = torch.ones_like(t.expand(B, T))[masked]", "tests/test_training.py"),
    ("loss: normalised by masked tokens", "training/trainer.py", "return (ce * weights).sum() / answer_tokens",
     "return (ce * weights).sum() / masked.sum().clamp_min(1)", "tests/test_training.py"),
    ("loss: prompts masked too", "training/trainer.py", "masked = (torch.rand(B, T, generator=generator) < t) & ~prompt_mask",
     "masked = torch.rand(B, T, generator=generator) < t", "tests/test_training.py"),
    ("loss: pad id instead of the mask id", "training/trainer.py", "torch.full_like(ids, model.config.mask_id)",
     "torch.full_like(ids, model.config.pad_id)", "tests/test_training.py"),
    ("sampling: commit the least confident", "sampling/ops.py",
     "order = torch.sort(scores, dim=-1, descending=True, stable=True).indices",
     "order = torch.sort(-scores, dim=-1, descending=True, stable=True).indices",
     "tests/test_reference_sampler.py"),
    ("sampling: guidance without the +1", "sampling/base.py", "(self.cfg_scale + 1.0) * (cond_logits - uncond_logits)",
     "self.cfg_scale * (cond_logits - uncond_logits)", "tests/test_reference_sampler.py"),
    ("sampling: guidance keeps the prompt", "sampling/base.py", "uncond[canvas.prompt_mask[rows]] = den.mask_id",
     "pass", "tests/test_reference_sampler.py"),
    ("sampling: margin is the top-1 probability", "sampling/ops.py", "score = top[..., 0] - top[..., 1]",
     "score = top[..., 0]", "tests/test_reference_sampler.py tests/test_sampling.py::test_confidence_scores_follow_their_formulas"),
    ("sampling: blocks ignored", "sampling/base.py", "return (x == run.denoiser.mask_id) & (in_block & window).unsqueeze(0)",
     "return (x == run.denoiser.mask_id) & window.unsqueeze(0)", "tests/test_sampling.py::test_several_blocks_follow_the_brute_force_law"),
    ("canvas: last prompt token masked", "sampling/base.py", "x[:, P:] = int(denoiser.mask_id)",
     "x[:, max(P - 1, 0):] = int(denoiser.mask_id)", "tests/test_sampling.py::test_prompted_runs_follow_the_conditional_law"),
    ("optimum: coarse Brent", "exact/search.py", 'options={"xatol": 1e-9}', 'options={"xatol": 1e-1}',
     "tests/test_exact.py::test_reveal_optimum_against_a_brute_force_grid_over_the_probabilities"),
    ("optimum: Nelder-Mead starved", "exact/search.py", 'options={"maxfev": evals_per_dim * (N - 1)', 'options={"maxfev": 2',
     "tests/test_exact.py::test_reveal_optimum_against_a_brute_force_grid_over_the_probabilities"),
    ("optimum: local search never moves", "exact/search.py", "if objective.of_counts(cand) < objective.of_counts(best) - 1e-15:",
     "if False:", "tests/test_exact.py::test_local_search_reaches_the_exhaustive_optimum_for_random_remasking"),
    ("tuning: random search unseeded", "tuning/claims.py", "return op.samplers.RandomSampler(seed=seed + worker)",
     "return op.samplers.RandomSampler()", "tests/test_tuning.py::test_random_strategy_is_seeded_within_bounds_and_keeps_its_best"),
    ("tuning: grid budget off by one", "tuning/study.py",
     "keep = np.random.default_rng(config.seed).permutation(len(points))[:config.budget]",
     "keep = np.random.default_rng(config.seed).permutation(len(points))[: config.budget - 1]",
     "tests/test_tuning.py::test_grid_budget_evaluates_a_seeded_subset_once"),
    ("tuning: non-finite scores accepted", "tuning/claims.py", "if not math.isfinite(score.value):", "if False:",
     "tests/test_tuning.py::test_a_non_finite_score_is_recorded_as_a_failure"),
    ("tuning: journal ignored", "tuning/storage.py", 'if url.startswith("journal:"):\n        from optuna',
     'if False:\n        from optuna', "tests/test_tuning.py::test_journal_storage_resumes"),
    ("exact: margin is the top-1 probability", "exact/laws.py",
     "return np.take(top, [-1], axis=i) - np.take(top, [-2], axis=i)", "return np.take(top, [-1], axis=i)",
     "tests/test_exact.py::test_confidence_laws_match_a_brute_force_reference"),
    ("generate: no cut at stop tokens", "integrations/huggingface.py", "            return ids[:k]\n", "            return ids\n",
     "tests/test_hf_lm_eval.py::test_generation_is_cut_at_the_first_stop_token"),
    ("generate: EOS lists ignored", "integrations/huggingface.py", "            ids |= {int(e) for e in eos}", "            pass",
     "tests/test_hf_lm_eval.py::test_generation_is_cut_at_the_first_stop_token"),
    ("train: never resumes", "training/trainer.py", "    return True\n\n\ndef check_fits", "    return False\n\n\ndef check_fits",
     "tests/test_training.py::test_train_command_completes_and_resumes"),
    ("sample-exact: temperature 0 by default", "cli/sample_cmd.py", 'base = {"temperature": EXACT_TEMPERATURE}',
     'base = {"temperature": 0.0}', "tests/test_sampling.py::test_sample_exact_defaults_follow_the_exact_law"),
    ("markov: not sticky", "exact/distributions.py", "+ 2.0 * np.eye(d)", "+ 0.2 * np.eye(d)",
     "tests/test_exact.py::test_markov_laws_are_homogeneous_sticky_first_order_chains"),
    ("potts: a three-way term", "exact/distributions.py", "    return np.exp(logw - logw.max())",
     "    if n > 2:\n        ii = np.arange(d)\n        three = np.zeros((d, d, d))\n        three[ii, ii, ii] = 0.3\n"
     "        logw = logw + three.reshape((d, d, d) + (1,) * (n - 3))\n    return np.exp(logw - logw.max())",
     "tests/test_exact.py::test_potts_laws_are_pairwise_equality_models"),
    ("cache: span calls never refresh", "sampling/base.py",
     "and not (refresh is not None and block.calls % refresh == 0))", "and True)", "tests/test_kv_cache.py"),
    ("cache: a span at the wrong positions", "models/transformer.py",
     "h = self.tok(tokens) + self.pos(torch.arange(start, start + S, device=tokens.device))",
     "h = self.tok(tokens) + self.pos(torch.arange(0, S, device=tokens.device))", "tests/test_kv_cache.py"),
    ("profile: information curve from the raw entropy", "profile.py", "return np.maximum(h[0] - h, 0.0)",
     "return np.maximum(h, 0.0)", "tests/test_profile.py"),
    ("threshold-floor: no floor", "sampling/hybrid.py",
     "return Decision((floor | (conf >= self.threshold)) & masked, cand)",
     "return Decision(((conf >= self.threshold) | select_top_k(conf, torch.ones_like(masked.sum(-1)))) & masked, cand)",
     "tests/test_hybrid_samplers.py"),
    ("revision: prompt tokens re-masked", "sampling/base.py",
     "remask = decision.remask & window & run.block.positions & ~run.canvas.prompt_mask[rows]", "remask = decision.remask",
     "tests/test_extending.py"),
    ("registry: a plug-in's failure stops the others", "registry.py",
     "        except Exception as exc:  # noqa: BLE001 - a broken plug-in must not take the built-ins down",
     "        except ImportError as exc:", "tests/test_extending.py"),
    ("items: stored scores ignored", "tuning/objectives.py", "todo = [i for i in ids if i not in have]", "todo = list(ids)",
     "tests/test_lm_eval_tuning.py"),
    ("heartbeat: nobody is ever stale", "tuning/_optuna.py", "return set(storage._get_stale_trial_ids(study._study_id))",
     "return set()", "tests/test_lm_eval_tuning.py::test_a_silent_worker_on_another_machine_is_redone"),
    ("stop_at_eos: stops with positions still masked before the end token", "sampling/base.py",
     "done = (first < L) & ~open_before", "done = first < L", "tests/test_generation_parity.py"),
    ("lm-eval: batches share one random stream", "integrations/lm_eval.py",
     "gen_length=self.gen_length, family=self.family, seeds=[seeds[i] for i in batch],",
     "gen_length=self.gen_length, family=self.family,",
     "tests/test_lm_eval_tuning.py::test_batches_give_the_answers_of_batch_one_in_fewer_runs"),
    ("logits_eos_inf: EOS still proposed", "sampling/base.py",
     "+ ([int(eos)] if self.logits_eos_inf and eos is not None else [])", "+ []", "tests/test_generation_parity.py"),
    ("confidence_eos_eot_inf: end tokens not last", "sampling/base.py",
     "        if not self.confidence_eos_eot_inf:\n            return scores", "        return scores",
     "tests/test_generation_parity.py"),
    ("dream top_p: the crossing token dropped", "sampling/dream.py",
     "    drop[..., 1:] = drop[..., :-1].clone()  # keep the token that crosses top_p\n", "",
     "tests/test_generation_parity.py"),
]


def run(name: str, rel: str, old: str, new: str, tests: str) -> dict:
    path = SRC / rel
    text = path.read_text()
    if text.count(old) != 1:
        return {"name": name, "status": "not applied", "detail": f"{rel}: the original text occurs {text.count(old)} times"}
    path.write_text(text.replace(old, new))
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests.split()],
                              cwd=ROOT, capture_output=True, text=True, timeout=1800)
    finally:
        path.write_text(text)
    failed = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED")]
    status = "caught" if proc.returncode != 0 else "SURVIVED"
    return {"name": name, "status": status, "detail": failed[0] if failed else proc.stdout.strip().splitlines()[-1]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated mutation names (substrings)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    chosen = [m for m in MUTATIONS if not args.only or any(k in m[0] for k in args.only.split(","))]
    results = []
    for m in chosen:
        r = run(*m)
        results.append(r)
        print(f"{r['status']:11s} {r['name']}: {r['detail']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if all(r["status"] == "caught" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

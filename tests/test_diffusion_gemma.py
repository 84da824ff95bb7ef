"""DiffusionGemma (uniform noise): token-for-token parity with transformers' own ``DiffusionGemmaForBlockDiffusion
.generate`` on a tiny random-init model of the real class, the schedule-driven acceptance rules, the command
line and the lm-eval model on a saved folder, and the bad-input refusals. Nothing is downloaded."""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("transformers.models.diffusion_gemma")

from _tiny_mdm import tiny_tokenizer  # noqa: E402

from mdm_energy.cli import main  # noqa: E402
from mdm_energy.integrations.diffusion_gemma import (  # noqa: E402
    DiffusionGemmaDenoiser,
    check_config,
    uniform_options,
)
from mdm_energy.integrations.huggingface import generate, model_family  # noqa: E402
from mdm_energy.sampling.uniform import decode_uniform  # noqa: E402
from mdm_energy.schedules import parse_schedule  # noqa: E402

CANVAS, EOS, PAD = 8, 2, 0


def tiny_config(canvas: int = CANVAS):
    from transformers import DiffusionGemmaConfig

    vocab = len(tiny_tokenizer())
    text = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=1, head_dim=16, global_head_dim=16, num_experts=2, top_k_experts=1,
                moe_intermediate_size=32, sliding_window=8, layer_types=["sliding_attention", "full_attention"],
                max_position_embeddings=256, pad_token_id=PAD, eos_token_id=EOS, bos_token_id=1)
    return DiffusionGemmaConfig(text_config=text, vision_config=None, canvas_length=canvas)


def tiny_model(seed: int = 0, sharpness: float = 30.0):
    """The real class at a tiny random init; the (tied) output embedding scaled by ``sharpness`` so that entropies
    spread out: several positions pass the bound, the adaptive stop fires, rows end at an end token."""
    from transformers import DiffusionGemmaForBlockDiffusion

    torch.manual_seed(seed)
    model = DiffusionGemmaForBlockDiffusion(tiny_config()).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(sharpness)
    model.generation_config.eos_token_id, model.generation_config.pad_token_id = EOS, PAD
    model.generation_config.max_denoising_steps = 4  # read by ours where no steps are given (saved with the folder)
    return model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def folder(tmp_path_factory, model):
    path = tmp_path_factory.mktemp("dgemma")
    model.save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


PROMPTS = [[5, 6, 7, 8, 9], [11, 12, 13]]


def theirs(model, prompts, gen_length, seed, *, bound=0.1, steps=6, eos=True, **kwargs):
    """transformers' own generate (left padding + attention mask for a batch), seeded through torch's global
    generator."""
    from transformers.models.diffusion_gemma.generation_diffusion_gemma import EntropyBoundSamplerConfig

    P = max(map(len, prompts))
    x = torch.tensor([[PAD] * (P - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts])
    torch.manual_seed(seed)
    return model.generate(x, attention_mask=mask, max_new_tokens=gen_length, max_denoising_steps=steps,
                          sampler_config=EntropyBoundSamplerConfig(entropy_bound=bound),
                          eos_token_id=EOS if eos else None, pad_token_id=PAD, **kwargs)


def ours(model, prompts, gen_length, seed, *, sampler="entropy-bounded", stop_at_eos=True, **options):
    den = DiffusionGemmaDenoiser(model)
    plan = uniform_options(model, den, sampler, gen_length, stop_at_eos=stop_at_eos, **options)
    return decode_uniform(den, prompts, gen_length, plan.rule, plan.settings, generator=torch.Generator().manual_seed(seed))


# --- parity with transformers' generate -------------------------------------------------------------------

CASES = [  # (prompts, gen_length, seed, their settings, our options)
    ([PROMPTS[0]], 16, 1, {"steps": 4}, {"max_denoising_steps": 4}),
    (PROMPTS, 16, 0, {"steps": 4}, {"max_denoising_steps": 4}),  # row 2 ends in canvas 1: canvas 2 is padding
    (PROMPTS, 16, 3, {"bound": 1.0, "steps": 4, "confidence_threshold": 1.0},  # adaptive stop fires
     {"epsilon": 1.0, "confidence_threshold": 1.0, "max_denoising_steps": 4}),
    (PROMPTS, 16, 6, {"bound": 1.0, "steps": 4, "stability_threshold": 0, "confidence_threshold": 2.0},
     {"epsilon": 1.0, "stability_threshold": 0, "confidence_threshold": 2.0, "max_denoising_steps": 4}),
    (PROMPTS, 16, 2, {"bound": 0.3, "steps": 3, "t_min": 0.2, "t_max": 1.5},
     {"epsilon": 0.3, "t_min": 0.2, "t_max": 1.5, "max_denoising_steps": 3}),
    (PROMPTS, 20, 4, {"bound": 2.0, "steps": 3, "confidence_threshold": None},  # stop off; 20 tokens -> 3 canvases
     {"epsilon": 2.0, "confidence_threshold": None, "max_denoising_steps": 3}),
]


@pytest.mark.parametrize("prompts, gen_length, seed, their, mine", CASES)
def test_token_for_token_parity_with_transformers_generate(model, prompts, gen_length, seed, their, mine):
    ref = theirs(model, prompts, gen_length, seed, **their)
    out = ours(model, prompts, gen_length, seed, **mine)
    assert torch.equal(out.tokens, ref.sequences)
    valid = (out.generated != PAD).sum(-1)
    assert torch.allclose(valid / out.nfe, ref.tokens_per_forward)  # the same decoder calls per row


def test_parity_exercises_what_it_claims(model):
    """The cases above accept several positions per step, stop canvases early and end rows at an end token."""
    out = ours(model, PROMPTS, 16, 3, epsilon=1.0, confidence_threshold=1.0, max_denoising_steps=4)
    assert max(max(a) for a in out.accepted) > 1
    assert min(len(a) for a in out.accepted) < 2 * 4  # some canvas stopped before its 4 steps
    ended = ours(model, PROMPTS, 16, 0, max_denoising_steps=4)
    assert ended.stopped.tolist() == [False, True] and ended.generated[1, CANVAS:].eq(PAD).all()
    assert ended.nfe.tolist() == [8, 4]  # an ended row's later canvas costs it no call


def test_no_end_token_handling_matches_theirs_without_eos(model):
    ref = theirs(model, PROMPTS, 16, 0, eos=False, steps=4)
    out = ours(model, PROMPTS, 16, 0, stop_at_eos=False, max_denoising_steps=4)
    assert torch.equal(out.tokens, ref.sequences) and out.canvases == 2 and out.nfe.tolist() == [8, 8]


def test_row_seeds_make_a_row_independent_of_its_batch(model):
    den = DiffusionGemmaDenoiser(model)
    plan = uniform_options(model, den, "entropy-bounded", 16, epsilon=1.0, confidence_threshold=1.0,
                           max_denoising_steps=4, stop_at_eos=True)
    both = decode_uniform(den, PROMPTS, 16, plan.rule, plan.settings, seeds=[11, 12])
    for b, seed in enumerate([11, 12]):  # equals the row alone, and transformers' generate on it at that seed
        alone = decode_uniform(den, [PROMPTS[b]], 16, plan.rule, plan.settings, seeds=[seed])
        P = both.gen_start
        assert torch.equal(both.generated[b], alone.generated[0]) and int(both.nfe[b]) == int(alone.nfe[0])
        ref = theirs(model, [PROMPTS[b]], 16, seed, bound=1.0, steps=4, confidence_threshold=1.0)
        assert torch.equal(alone.tokens, ref.sequences) and both.tokens.shape[1] - P == 16


# --- the schedule-driven rules --------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["linear", "beta:0.9,0.3", "sin2"])
def test_fixed_count_accepts_the_schedules_cumulative_count_each_step(model, spec):
    out = ours(model, PROMPTS, 16, 0, sampler="fixed", schedule=spec, steps=8, remasking="entropy",
               confidence_threshold=None, stop_at_eos=False)
    cumulative = parse_schedule(spec).counts(CANVAS, 4).cumsum().tolist()
    assert out.accepted == [cumulative * 2, cumulative * 2] and out.nfe.tolist() == [8, 8]


def test_fixed_count_keeps_the_lowest_entropy_positions():
    from mdm_energy.sampling.uniform import FixedCount, StepScores

    H = torch.tensor([[0.5, 0.1, 2.0, 0.3], [3.0, 2.0, 1.0, 0.0]])
    probs = torch.full((2, 4, 3), 1 / 3)
    keep = FixedCount(parse_schedule("linear")).accept(StepScores(H, probs, torch.zeros(2, 4, dtype=torch.long)), 1, 2)
    assert keep.tolist() == [[False, True, False, True], [False, False, True, True]]


def test_entropy_floor_is_the_bound_with_the_schedule_under_it(model):
    spec = "beta:0.9,0.3"
    cumulative = parse_schedule(spec).counts(CANVAS, 4).cumsum().tolist()
    floor = ours(model, PROMPTS, 16, 2, sampler="entropy-floor", schedule=spec, steps=8, epsilon=1.0,
                 confidence_threshold=None, stop_at_eos=False)
    for row in floor.accepted:
        assert all(a >= c for a, c in zip(row, cumulative * 2))  # the floor holds
    bound = ours(model, PROMPTS, 16, 2, epsilon=1.0, max_denoising_steps=4, confidence_threshold=None, stop_at_eos=False)
    assert floor.accepted != bound.accepted  # the floor binds somewhere here
    # a vanishing bound (it still passes one position) leaves the floor alone where every C_k >= 1: the fixed
    # count of the lowest entropies, token for token
    tiny = ours(model, PROMPTS, 16, 2, sampler="entropy-floor", schedule="linear", steps=8, epsilon=1e-12,
                confidence_threshold=None, stop_at_eos=False)
    fixed = ours(model, PROMPTS, 16, 2, sampler="fixed", schedule="linear", steps=8, remasking="entropy",
                 confidence_threshold=None, stop_at_eos=False)
    assert torch.equal(tiny.tokens, fixed.tokens)
    # a huge bound accepts every position at every step
    wide = ours(model, PROMPTS, 16, 2, sampler="entropy-floor", schedule=spec, steps=8, epsilon=1e9,
                confidence_threshold=None, stop_at_eos=False)
    assert all(a == CANVAS for row in wide.accepted for a in row)


def test_masked_entropy_floor_sampler_holds_the_floor():
    from mdm_energy.sampling import make_sampler
    from _tiny_mdm import tiny_transformer
    from mdm_energy.models import as_denoiser

    den = as_denoiser(tiny_transformer(0, vocab=12, mask_id=11, eos_id=1, pad_id=0))
    cumulative = parse_schedule("linear").counts(8, 4).cumsum().tolist()
    out = make_sampler("entropy-floor", steps=4, epsilon=0.0)(den, [[3, 4]], 8, generator=torch.Generator().manual_seed(0),
                                                              return_trajectory=True)
    traj = out.trajectory[0, out.gen_start:]
    got = [int((traj <= k).sum()) for k in range(1, 5)]
    assert all(g >= c for g, c in zip(got, cumulative)) and got[-1] == 8
    fixed = make_sampler("fixed", steps=4, remasking="entropy")(den, [[3, 4]], 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.tokens, fixed.tokens)  # epsilon 0 and distinct entropies: the fixed count itself


# --- family, generate(), the command line, lm-eval ---------------------------------------------------------


def test_family_and_generate(model):
    tok = tiny_tokenizer()
    assert model_family(model) == "diffusion_gemma"
    texts, out = generate(model, tok, ["ab", "1+2="], sampler="entropy-bounded", gen_length=16, epsilon=0.5,
                          stop_at_eos=True, max_denoising_steps=4, seeds=[1, 2], return_output=True)
    assert len(texts) == 2 and out.nfe.max() <= 8 and out.canvases <= 2


def test_generate_command_and_bad_input(folder, capsys):
    argv = ["generate", "--model", str(folder), "--prompt", "1+2=", "--gen-length", "16", "--sampler", "fixed",
            "-N", "8", "--remasking", "entropy", "--json"]
    assert main(argv) == 0
    obj = json.loads(capsys.readouterr()[0])
    assert obj["canvases"] <= 2 and obj["nfe"] <= 8 and obj["counts"][:4] == parse_schedule("linear").counts(8, 4).cumsum().tolist()
    assert main(["generate", "--model", str(folder), "--prompt", "1+2=", "--gen-length", "8", "--sampler",
                 "entropy-bounded", "--stop-at-eos", "--show"]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and "call 1:" in err and "call 4:" in err and "call 5:" not in err  # the folder's 4 steps
    for extra, needle in [
        (["--sampler", "threshold"], "the threshold sampler cannot run on uniform noise"),
        (["--sampler", "entropy-bounded", "--temperature", "0.5"], "cannot take temperature=0.5"),
    ]:
        assert main(["generate", "--model", str(folder), "--prompt", "1+2=", "--gen-length", "16", *extra]) == 2
        out, err = capsys.readouterr()
        assert out == "" and needle in err and err.count("\n") == 1, (extra, err)


@pytest.mark.parametrize("sampler, options, needle", [
    ("wino", {}, "the wino sampler cannot run on uniform noise (DiffusionGemma has no mask"),
    ("fixed", {"steps": 8, "remasking": "random"}, "cannot take remasking='random'"),
    ("entropy-bounded", {"block_length": 4}, "block_length 4 does not match"),
    ("entropy-bounded", {"cache": "prefix", "block_length": 8}, "cannot take cache='prefix'"),
    ("entropy-bounded", {"cfg_scale": 1.0}, "cannot take cfg_scale=1.0"),
    ("fixed", {"steps": 8, "skip_empty_steps": True}, "cannot take skip_empty_steps=True"),
    ("entropy-bounded", {"suppress_tokens": (3,)}, "cannot take suppress_tokens=(3,)"),
    ("fixed", {"steps": 5}, "steps 5 is not divisible by the 2 canvases of 8 tokens (gen_length 16)"),
])
def test_what_uniform_noise_cannot_take_is_refused_in_one_line(model, sampler, options, needle):
    with pytest.raises(ValueError) as err:
        ours(model, PROMPTS, 16, 0, sampler=sampler, **options)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_profile_refuses_a_uniform_noise_model(folder, tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("1+2=\n")
    assert main(["profile", "--model", str(folder), "--prompts", str(prompts), "--length", "8",
                 "--save", str(tmp_path / "prof.json")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "uniform-noise model (DiffusionGemma)" in err and err.count("\n") == 1
    assert not (tmp_path / "prof.json").exists()


def test_config_lacking_fields_is_named(folder, tmp_path, capsys):
    import shutil

    bad = shutil.copytree(folder, tmp_path / "bad")
    data = json.loads((bad / "config.json").read_text())
    data["canvas_length"] = None
    (bad / "config.json").write_text(json.dumps(data))
    assert main(["generate", "--model", str(bad), "--prompt", "1", "--sampler", "entropy-bounded"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "lacks canvas_length" in err and err.count("\n") == 1

    class Config:
        model_type, canvas_length, text_config = "diffusion_gemma", None, None

    with pytest.raises(ValueError, match="lacks canvas_length, text_config.vocab_size"):
        check_config(Config())


def test_family_settings_are_checked(model):
    with pytest.raises(ValueError, match="does not take 'colour'"):
        ours(model, PROMPTS, 8, 0, colour=1)
    with pytest.raises(ValueError, match="give steps, not max_denoising_steps"):
        ours(model, PROMPTS, 8, 0, sampler="fixed", steps=4, max_denoising_steps=4)
    with pytest.raises(ValueError, match="0 <= t_min < t_max"):
        ours(model, PROMPTS, 8, 0, t_min=0.9, t_max=0.5)


def test_lm_eval_model_logs_nfe_per_request(folder):
    pytest.importorskip("lm_eval")
    from lm_eval.api.instance import Instance

    from mdm_energy.integrations.lm_eval import MDMEnergyLM

    lm = MDMEnergyLM.create_from_arg_string(f"pretrained={folder},sampler=fixed,steps=4,remasking=entropy,"
                                            "gen_length=8,stop_at_eos=true")
    reqs = [Instance("generate_until", {}, ("1+2=", {"until": ["\n"]}), 0),
            Instance("generate_until", {}, ("30+4=", {"until": ["\n"]}), 1)]
    texts = lm.generate_until(reqs)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert [r.args[1]["mdm_energy_nfe"] for r in reqs] == [[4], [4]] and lm.get_model_info()["mdm_energy_nfe_mean"] == 4
    assert lm.last_output.accepted[0] == parse_schedule("linear").counts(8, 4).cumsum().tolist()
    with pytest.raises(ValueError, match="the klass sampler cannot run on uniform noise"):
        MDMEnergyLM.create_from_arg_string(f"pretrained={folder},sampler=klass,gen_length=8")
    with pytest.raises(ValueError, match="DiffusionGemma .uniform noise. has no mask"):
        lm.loglikelihood([Instance("loglikelihood", {}, ("1+2=", "3"), 0)])

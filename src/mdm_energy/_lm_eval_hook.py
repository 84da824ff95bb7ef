"""Imported at interpreter start by ``mdm_energy_lm_eval.pth``; registers the lm-eval model only inside
lm-eval's own command line, so ``lm_eval --model mdm_energy`` works without any other set-up."""

import os
import sys

if sys.argv and os.path.basename(sys.argv[0]) in ("lm_eval", "lm-eval", "lm_eval.exe", "lm-eval.exe"):
    try:
        import mdm_energy.integrations.lm_eval  # noqa: F401  (registers "mdm_energy")
    except ImportError:  # lm-eval or transformers missing: lm-eval itself will say what is wrong
        pass

"""Installs ``mdm_energy_lm_eval.pth`` beside the package so that the ``lm_eval`` command finds the
``mdm_energy`` model: the .pth imports a tiny hook that registers the model only when the running
program is lm-eval's command line (it costs other programs one small import)."""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "mdm_energy_lm_eval.pth"
PTH_LINE = "import mdm_energy._lm_eval_hook\n"


class build_py_with_pth(build_py):
    def run(self):
        super().run()
        target = os.path.join(self.build_lib, PTH)
        with open(target, "w") as fh:
            fh.write(PTH_LINE)

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, PTH)]

    def get_output_mapping(self):
        mapping = super().get_output_mapping()
        mapping[os.path.join(self.build_lib, PTH)] = os.path.join(os.path.dirname(os.path.abspath(__file__)), "src", PTH)
        return mapping


setup(cmdclass={"build_py": build_py_with_pth})

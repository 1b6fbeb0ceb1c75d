"""Hydra plugin: makes solo-coplugin's configs and methods visible to solo-learn's scripts.

Hydra imports every module under the ``hydra_plugins`` namespace package in every Hydra
application, before the config is composed and before the task function runs. So this module
only imports Hydra at its top level, and acts only in applications that have already imported
solo-learn (``main_pretrain.py``, ``main_linear.py``): there it registers the CO methods and
backbones (``solo.methods.METHODS`` is checked only later, in ``main()``) and appends the
packaged CIFAR configs, so that ``python main_pretrain.py --config-name co_simclr.yaml`` works
from solo-learn's root with no ``--config-path``.
"""

import os
import sys

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

#: configs reachable by bare name (``--config-name co_byol.yaml``): the CIFAR ones
DEFAULT_CONFIGS = "pkg://solo_coplugin.configs.cifar"


class SoloCoPluginSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        if "solo" not in sys.modules:
            return  # not a solo-learn application: stay out of its way

        import solo_coplugin.registration

        solo_coplugin.registration.register()
        search_path.append(provider="solo-coplugin", path=DEFAULT_CONFIGS)
        if os.environ.get("SOLO_CO_DALI_CPU") == "1":  # opt-in, see solo_coplugin/dali_cpu.py
            from solo_coplugin.dali_cpu import enable_dali_cpu

            enable_dali_cpu()

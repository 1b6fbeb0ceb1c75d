"""Opt-in workaround: solo-learn's DALI data modules on a machine without a GPU.

solo-learn passes the trainer's local rank as DALI's ``device_id`` even with
``dali.device=cpu``; DALI (2.x) refuses any ``device_id`` without CUDA ("You are trying to create
a GPU DALI pipeline while CUDA is not available"). The fix belongs in solo-learn
(``patches/solo-learn-dali-cpu.patch``: pass ``device_id=None`` for CPU pipelines). Until it is
merged, :func:`enable_dali_cpu` makes the same change from outside, only for pipeline builders
whose device is ``cpu``; GPU pipelines are untouched. It is off unless asked for: call it, or set
``SOLO_CO_DALI_CPU=1`` for ``main_pretrain.py`` / ``main_linear.py`` (read by the Hydra plugin).
"""

import functools

ENV_VAR = "SOLO_CO_DALI_CPU"


def enable_dali_cpu() -> bool:
    """Lets solo-learn's DALI pipelines with ``dali.device=cpu`` run without CUDA (idempotent).

    Returns:
        bool: True if DALI is installed and the workaround is active.
    """

    try:
        from solo.data import dali_dataloader
    except ImportError:  # DALI not installed: solo-learn has no DALI data modules to fix
        return False
    for builder in (dali_dataloader.PretrainPipelineBuilder, dali_dataloader.NormalPipelineBuilder):
        pipeline = builder.pipeline
        if getattr(pipeline, "_solo_co_dali_cpu", False):
            continue

        @functools.wraps(pipeline)
        def cpu_pipeline(self, *args, _pipeline=pipeline, **kwargs):
            if self.device == "cpu":
                kwargs["device_id"] = None
            return _pipeline(self, *args, **kwargs)

        cpu_pipeline._solo_co_dali_cpu = True
        builder.pipeline = cpu_pipeline
    return True

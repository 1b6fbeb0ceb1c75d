"""Hydra imports solo-coplugin's search-path plugin in every Hydra application of the environment:
an unrelated application must run unchanged and import neither torch nor solo-learn because of it.
"""

import json
import subprocess
import sys
import textwrap

PLUGIN_MODULE = "hydra_plugins.solo_coplugin_searchpath.solo_coplugin_searchpath"

UNRELATED_APP = textwrap.dedent(f"""
    import json
    import sys

    import hydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf


    @hydra.main(version_base="1.2", config_path=".", config_name="config")
    def main(cfg):
        heavy = ("torch", "solo", "solo_coplugin", "lightning", "torchvision", "timm")
        report = {{
            "cfg": OmegaConf.to_container(cfg),
            "providers": [s.provider for s in HydraConfig.get().runtime.config_sources],
            "plugin_imported": {PLUGIN_MODULE!r} in sys.modules,
            "heavy_modules": sorted(m for m in heavy if m in sys.modules),
        }}
        print("REPORT " + json.dumps(report))


    main()
    """)


def test_unrelated_hydra_app_runs_unchanged_without_torch_or_solo_learn(tmp_path):
    (tmp_path / "app.py").write_text(UNRELATED_APP)
    (tmp_path / "config.yaml").write_text("greeting: hello\nnested:\n  n: 3\n")
    result = subprocess.run(
        [sys.executable, "app.py", "nested.n=4", f"hydra.run.dir={tmp_path / 'out'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("REPORT ")]
    report = json.loads(line[len("REPORT ") :])

    assert report["plugin_imported"]  # Hydra did load our plugin in this application...
    assert report["heavy_modules"] == []  # ...which imported nothing heavy
    assert report["cfg"] == {"greeting": "hello", "nested": {"n": 4}}
    assert "solo-coplugin" not in report["providers"]  # and left its search path alone

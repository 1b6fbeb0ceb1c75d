"""solo-coplugin's pretraining configs, installed as the package ``solo_coplugin.configs``.

``<dataset>/co_<method>.yaml`` like solo-learn's ``scripts/pretrain/<dataset>/<method>.yaml``.
The CIFAR folder is on Hydra's search path (``--config-name co_byol.yaml``); the others are
reached with ``--config-path pkg://solo_coplugin.configs.<dataset>``.
"""

"""solo-coplugin's Tiny-ImageNet (64 px) pretraining configs (a package so that Hydra's pkg:// can
load them)."""

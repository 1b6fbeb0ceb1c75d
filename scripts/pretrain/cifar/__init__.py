"""solo-coplugin's cifar pretraining configs (a package so that Hydra's pkg:// can load them)."""

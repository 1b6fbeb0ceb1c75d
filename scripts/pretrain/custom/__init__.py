"""solo-coplugin's custom pretraining configs (a package so that Hydra's pkg:// can load them)."""

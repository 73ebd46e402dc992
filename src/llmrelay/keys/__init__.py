"""Virtual keys: who may call the gateway, for which models, how often and for how much."""

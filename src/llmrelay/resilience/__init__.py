"""Serving one model name from several deployments: balancing, limits, retries, timeouts,
cooldowns and fallbacks."""

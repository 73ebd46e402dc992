"""The conformance matrix: every client against every backend, scenario by scenario."""

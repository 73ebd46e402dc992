"""Inbound surfaces, one thin router each."""

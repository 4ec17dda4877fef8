"""The package version."""

version = "0.1.0"

"""The spec language: models, YAML loading with positions, extends, and checks."""

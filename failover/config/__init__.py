"""Typed configuration: models, YAML loading with file:line errors, JSON Schema export."""

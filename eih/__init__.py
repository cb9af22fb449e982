"""The `eih` command and project-wide settings (store locations)."""

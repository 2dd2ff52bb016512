"""Shared concepts: configuration, the user-error base, device/worker/option choices, seeding."""

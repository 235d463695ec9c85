"""Shared test setup. Runs before any notebook kernel starts, so the notebooks inherit it."""

import os

# The README's test command runs every notebook; without a profile they would take the `cpu`
# profile's ten minutes each. Tests and notebooks run in the `ci` profile unless told otherwise.
os.environ.setdefault("DALLE2_LESSONS_PROFILE", "ci")

"""Releases: what ``make sweep`` and ``make upstream-tests`` run, never the CLI.

``sweep`` applies, compiles and reverts on every ultralytics 8.x release; ``upstream_tests`` runs ultralytics'
own test suite on an unpatched and a patched copy of the installed release.
"""

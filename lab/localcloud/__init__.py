"""The local cloud: an embedded AWS (ministack) on 127.0.0.1 with the corrections AWS conformance
needs (engine patches, a CloudWatch metrics and alarm agent, post-deploy conformance checks).

An emulator layer usable for any stage: it imports nothing from functions/ nor from stage_client/
(tests/unit/test_import_boundaries.py); lab.harness deploys this project's stage into it.
"""

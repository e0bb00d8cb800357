"""`python -m app`: synthesize the standalone stages only (what the local cloud deploys); the whole
app, with the pipeline, is cdk_app.py (cdk.json's "app")."""

from app.main import build_app

build_app().synth()

"""`python -m app`: synthesize the CDK app into cdk.out (the entry point named in cdk.json)."""

from app.main import build_app
from pipeline import build_pipeline

app = build_app()
# The delivery pipeline (pipeline/, CDK Pipelines): dev -> checks -> approval -> prod.
build_pipeline(app)
app.synth()

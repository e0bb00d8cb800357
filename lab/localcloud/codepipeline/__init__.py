"""A local CodePipeline: runs a pipeline as CloudFormation deployed it into the engine (stages, actions
in run order, CodeBuild projects, CloudFormation change sets across accounts, manual approvals), and
reads the same structure from a cloud assembly before it is deployed.

Stage-independent: it knows CodePipeline, CodeBuild and CloudFormation, not this project's stage.
The engine stores the pipeline (engine_patches/codepipeline.py); `model` is its structure,
`assembly` reads it from a synthesized cloud assembly, `executor` runs an execution.
"""

"""The pipeline rehearsal: the delivery pipeline as synthesized, run on the local cloud across three
accounts (pipeline, dev, prod), triggered by `git push lab main` or `make pipeline`.

lab.localcloud.codepipeline is the stage-independent CodePipeline it runs on; this package is the
project's side: its accounts and their bootstrap, the local identity provider behind prod's JWT, the
context the synth step reads, the git remote and its hook, the `lab pipeline` commands, the record
of every run (reports/pipeline-<id>.json and .html) and the post-deploy steps' time budgets.
"""

"""The ingestion stage as AWS CDK v2 code: configuration, constructs, stacks and the stage."""

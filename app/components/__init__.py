"""The stage's components: each construct holds its resources, its grants (with the keys they need)
and its cdk-nag acknowledgements; the stacks (app/stacks) compose them."""

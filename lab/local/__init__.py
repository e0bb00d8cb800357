"""The local cloud: the real synthesized stage deployed into an embedded AWS on 127.0.0.1."""

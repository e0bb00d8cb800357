"""Corrections to the pinned ministack engine, installed by engine_main.py in the engine's own
interpreter (loaded by file path as the package `lab_engine_patches`, so nothing of lab/ shadows the
engine's or the functions' imports).

Each module holds one behaviour where the engine is more permissive than AWS (or adds what AWS does
and the engine does not), and `install()`s it: its docstrings name what ministack does, what AWS does
and the AWS document; `require` stops the engine when an upgrade moved what a patch replaces.
Modules that import ministack are only imported by the engine; `delivery_stats`, `limits`,
`queue_ages` and `batching_window` import nothing of it and are also read by the lab.
"""

"""Developer tools: a deterministic generator of LightRAG working dirs for demos, tests and benchmarks.

``python -m hybridrag_backends.devtools.generate OUT_DIR ...`` (see its ``--help``).
"""

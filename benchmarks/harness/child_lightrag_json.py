"""Child process: LightRAG 1.5.7 opening a JSON working dir with its own storage classes.

    python benchmarks/harness/child_lightrag_json.py WORKING_DIR DIM

``LightRAG(working_dir=...).initialize_storages()`` loads every ``kv_store_*.json``, ``vdb_*.json`` and the
GraphML graph whole, as LightRAG does when an application starts: the cost any LightRAG-side copy pays
before writing anything. No model runs (zero embeddings, an empty LLM, a byte tokenizer). Prints one JSON
line with the seconds spent in ``initialize_storages``.
"""

import asyncio
import json
import sys
import time

import numpy as np
from lightrag import LightRAG
from lightrag.utils import EmbeddingFunc, Tokenizer


class ByteTokenizer:  # keeps LightRAG from fetching a tiktoken model: only the storages are loaded
    def encode(self, text):
        return list(text.encode())

    def decode(self, tokens):
        return bytes(tokens).decode(errors="ignore")


async def main(working_dir: str, dim: int) -> None:
    async def embed(texts, **_):
        return np.zeros((len(texts), dim), np.float32)

    async def llm(*_, **__):
        return ""

    started = time.perf_counter()
    rag = LightRAG(working_dir=working_dir, llm_model_func=llm, tokenizer=Tokenizer("bytes", ByteTokenizer()),
                   embedding_func=EmbeddingFunc(embedding_dim=dim, max_token_size=8192, func=embed))
    await rag.initialize_storages()
    print(json.dumps({"seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))

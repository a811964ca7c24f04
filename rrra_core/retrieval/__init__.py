"""Dense retrieval: the bi-encoder, batched and cached encoding, the FAISS index, end-to-end
retrieval, the serving search path, BM25, evaluation and the adapter rerank.

Submodules are imported by name (``rrra_core.retrieval.encoder`` ...) so that reading a
result (``evaluation``, ``rerank``) never pulls in torch.
"""

"""Articles in, passages out: loading, chunking, embedding and the Chroma store.

This package knows Chroma and embeddings and nothing about answering questions.
"""

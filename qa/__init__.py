"""Question answering over the stored articles: a question in, an Answer with citations out."""

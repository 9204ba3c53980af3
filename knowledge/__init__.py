"""FAQ knowledge base: sentence-transformers encoder, FAISS index, jieba BM25 and hybrid ranking (issue 4)."""

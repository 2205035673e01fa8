"""The sans-I/O Deepgram session (`core.Session`) and its helpers: chunking, token-to-word
assembly, formatting."""
